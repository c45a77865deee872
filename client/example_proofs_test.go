package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/merkle"
)

// Search results with proofs of their inclusion in the verifiable log,
// checked with the log's public key alone.
func ExampleClient_SearchEventsWithProofs() {
	ctx := context.Background()
	srv := startExampleServer()
	defer srv.stop()
	producer, _ := client.Dial(ctx, srv.internalAddr, client.WithToken(srv.producerToken))
	defer producer.Close()
	auditor, _ := client.Dial(ctx, srv.publicAddr, client.WithToken(srv.readerToken))
	defer auditor.Close()

	// A receipt: the create waits until a signed checkpoint covers the event.
	created, receipt, err := producer.CreateEventWithReceipt(ctx, "0f8fad5b-d9cb-469f-a165-70867728950e", audittrail.NewEvent{Event: audittrail.Event{
		EventTime: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), EventSource: "h2oai-enginemanager-server",
		Action: "actions/enginemanager/daiEngines/DELETE", Principal: "users/jane", SourceIP: "203.0.113.7",
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The log's public key: <data-dir>/log-verification.key of the server.
	verifier, err := merkle.NewVerifier([]byte(srv.verifierKey))
	if err != nil {
		fmt.Println(err)
		return
	}
	cp, pending, err := receipt.Verify(verifier, []*audittrail.Event{created})
	fmt.Println("receipt:", err, pending, "pending, seq", receipt.Inclusions[0].LeafIndex+1, "of", cp.Size)

	// A page of search results, each proven against one checkpoint.
	res, proofs, err := auditor.SearchEventsWithProofs(ctx, audittrail.SearchEventsRequest{PageSize: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, pending, err = proofs.Verify(verifier, res.Events)
	fmt.Println("search:", len(res.Events), "events,", pending, "pending,", err)

	// Output:
	// receipt: <nil> 0 pending, seq 1 of 1
	// search: 1 events, 0 pending, <nil>
}
