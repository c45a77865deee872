package main

import (
	"context"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
)

// startLog starts the verifiable log's integrator when the store supports
// it (docs/design/verifiable-log.md): the signing key lives in the data
// directory, the public key is written next to it.
func (m *Main) startLog(ctx context.Context, store audittrail.Store) error {
	ls, ok := store.(audittrail.LogStore)
	if !ok {
		m.log.InfoContext(ctx, "verifiable log: not supported by this store")
		return nil
	}
	signer, vkey, err := logsign.LoadOrCreateKey(m.Config.DataDir, "")
	if err != nil {
		return err
	}
	l, err := logsign.New(ctx, logsign.Config{Store: ls, Signer: signer, VerifierKey: vkey, Logger: m.log})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { l.Run(runCtx); close(done) }()
	m.Log = l
	m.stopLog = func() {
		cancel()
		<-done
		fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer fcancel()
		if err := l.Flush(fctx); err != nil {
			m.log.Error("verifiable log: final checkpoint failed", "err", err)
		}
	}
	return nil
}
