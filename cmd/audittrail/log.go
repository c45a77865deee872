package main

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
)

// startLog starts the verifiable log when the store supports it
// (docs/design/verifiable-log.md). The signing key is the file --log-key,
// by default in the data directory, created on the first start; the log's
// public key is written to <data-dir>/log-verification.key.
//
// PostgreSQL replicas share the log: one integrates and signs, the others
// serve it (logsign.SharedStore), so they must all sign with one key, the
// one the database records. A replica without a key file creates one only
// while the database records none; otherwise it serves the log without
// signing, and so does a replica whose key is another one (logsign.New
// logs why). The private key is never stored in the database: whoever can
// write the database could then re-sign a rewritten history.
func (m *Main) startLog(ctx context.Context, store audittrail.Store) error {
	ls, ok := store.(audittrail.LogStore)
	if !ok {
		m.log.InfoContext(ctx, "verifiable log: not supported by this store")
		return nil
	}
	keyFile := m.Config.LogKey
	if keyFile == "" {
		keyFile = filepath.Join(m.Config.DataDir, logsign.SigningKeyFile)
	}
	create := true
	shared, isShared := ls.(logsign.SharedStore)
	if isShared {
		bound, err := shared.BindVerifierKey(ctx, "")
		if err != nil {
			return err
		}
		create = bound == ""
	}
	signer, vkey, err := logsign.LoadOrCreateKeyFile(keyFile, "", create)
	switch {
	case isShared && errors.Is(err, fs.ErrNotExist):
		signer, vkey = nil, ""
		m.log.WarnContext(ctx, "verifiable log: no signing key: this replica serves the log but will not sign; "+
			"give it the log's signing key with --log-key", "path", keyFile)
	case err != nil:
		return err
	}
	l, err := logsign.New(ctx, logsign.Config{Store: ls, Signer: signer, VerifierKey: vkey, Logger: m.log})
	if err != nil {
		return err
	}
	if err := logsign.WriteVerifierKey(filepath.Join(m.Config.DataDir, logsign.VerificationKeyFile), l.VerifierKey()); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { l.Run(runCtx); close(done) }()
	m.Log = l
	m.stopLog = func() {
		cancel()
		<-done
		// The leader integrates and signs what is committed; another
		// replica has nothing to do.
		fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer fcancel()
		if err := l.Flush(fctx); err != nil {
			m.log.Error("verifiable log: final checkpoint failed", "err", err)
		}
	}
	return nil
}
