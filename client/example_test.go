package client_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/pebblestore"
	"github.com/audittrail/audittrail/server"
)

func Example() {
	ctx := context.Background()
	srv := startExampleServer() // what `audittrail serve` runs, on free ports
	defer srv.stop()

	// Producers create events through the internal listener.
	producer, err := client.Dial(ctx, srv.internalAddr, client.WithToken(srv.producerToken))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer producer.Close()
	created, err := producer.CreateEvent(ctx, "b096430b-c7a8-47f2-a129-d9ae58cf454f", audittrail.NewEvent{Event: audittrail.Event{
		EventTime:   time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		EventSource: "h2oai-enginemanager-server",
		Action:      "actions/enginemanager/daiEngines/CREATE",
		Status:      &audittrail.Status{Code: 0},
		Principal:   "users/a2b3b8a6-05c6-47d1-8ae1-774113404975",
		SourceIP:    "203.0.113.7",
		Resource:    "//engine-manager/workspaces/w1/daiEngines/e1",
		Type:        audittrail.TypeAPI,
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("created", created.Name(), "in", created.Workspace)

	// Auditors search through the public listener; Events follows the pages.
	auditor, err := client.Dial(ctx, srv.publicAddr, client.WithToken(srv.readerToken))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer auditor.Close()
	var filter audittrail.Filter
	filter.Regex[audittrail.FieldAction] = "/CREATE$"
	for e, err := range auditor.Events(ctx, filter, 100) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("found", e.EventTime.Format(time.RFC3339), e.Principal, e.Action)
	}

	// Errors are *audittrail.Error, with a code to act on.
	_, err = auditor.CreateEvent(ctx, "5b5a1c6e-2f38-4c39-9a4f-7f2f8b6a1d2e", audittrail.NewEvent{})
	fmt.Println(audittrail.ErrorCode(err))

	// Output:
	// created events/b096430b-c7a8-47f2-a129-d9ae58cf454f in workspaces/w1
	// found 2026-01-02T15:04:05Z users/a2b3b8a6-05c6-47d1-8ae1-774113404975 actions/enginemanager/daiEngines/CREATE
	// unimplemented
}

// exampleServer is an audit trail server running in process on free
// loopback ports, with an embedded store in a temporary directory and its
// verifiable log.
type exampleServer struct {
	publicAddr, internalAddr   string
	readerToken, producerToken string
	verifierKey                string // the log's public key, as in log-verification.key
	stop                       func()
}

func startExampleServer() *exampleServer {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "audittrail-example-")
	if err != nil {
		panic(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	store, err := pebblestore.Open(ctx, pebblestore.Config{Dir: dir, Logger: quiet})
	if err != nil {
		panic(err)
	}
	svc := &audittrail.Service{Store: store, PageTokenKey: make([]byte, audittrail.PageTokenKeySize)}
	rand.Read(svc.PageTokenKey)
	s := &exampleServer{readerToken: rand.Text(), producerToken: rand.Text()}
	signer, vkey, err := logsign.LoadOrCreateKey(dir, "")
	if err != nil {
		panic(err)
	}
	log, err := logsign.New(ctx, logsign.Config{Store: store, Signer: signer, VerifierKey: vkey, Logger: quiet})
	if err != nil {
		panic(err)
	}
	logCtx, stopLog := context.WithCancel(ctx)
	logDone := make(chan struct{})
	go func() { log.Run(logCtx); close(logDone) }()
	s.verifierKey = vkey
	srv, err := server.New(server.Config{Service: svc, Authenticator: server.NewStaticTokens(s.readerToken, s.producerToken), Logger: quiet, Log: log})
	if err != nil {
		panic(err)
	}
	public, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	internal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv.Start(public, internal)
	s.publicAddr, s.internalAddr = public.Addr().String(), internal.Addr().String()
	s.stop = func() {
		srv.Shutdown(ctx)
		stopLog()
		<-logDone
		store.Close()
		os.RemoveAll(dir)
	}
	return s
}
