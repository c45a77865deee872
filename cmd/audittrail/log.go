package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/server"
	"github.com/audittrail/audittrail/witness"
	"golang.org/x/mod/sumdb/note"
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
//
// --log-previous-key rotates the key (docs/configuration.md, "Rotating the
// log's signing key"): a previous private key cosigns every checkpoint, a
// previous public key only lets the stored checkpoints verify, and the
// log's public keys become the new one followed by the previous ones.
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
	var cosigners []note.Signer
	previous, origin := "", ""
	if m.Config.LogPreviousKey != "" {
		signer, vkeys, err := logsign.LoadPreviousKey(m.Config.LogPreviousKey)
		if err != nil {
			return err
		}
		if signer != nil {
			cosigners = append(cosigners, signer)
		}
		previous, origin = vkeys, logsign.KeyName(vkeys)
	}
	// A key is created for a new log, and for a rotation (on any replica).
	create := true
	shared, isShared := ls.(logsign.SharedStore)
	if isShared {
		bound, err := shared.BindVerifierKey(ctx, "")
		if err != nil {
			return err
		}
		create = bound == "" || previous != ""
	} else if previous == "" {
		latest, err := ls.LatestCheckpoint(ctx)
		if err != nil {
			return err
		}
		create = latest == nil
	}
	signer, vkey, err := logsign.LoadOrCreateKeyFile(keyFile, origin, create)
	switch {
	case isShared && errors.Is(err, fs.ErrNotExist):
		signer, vkey, cosigners = nil, "", nil
		m.log.WarnContext(ctx, "verifiable log: no signing key: this replica serves the log but will not sign; "+
			"give it the log's signing key with --log-key", "path", keyFile)
	case !create && errors.Is(err, fs.ErrNotExist):
		// Not a failure to create the key of a new log (its directory
		// missing): that one is reported as it is, below.
		return fmt.Errorf("verifiable log: the log has signed checkpoints but its signing key %s is missing: restore the key, "+
			"or replace it by a new one with the previous key's public key as --log-previous-key (docs/configuration.md, \"Rotating the log's signing key\")", keyFile)
	case err != nil:
		return err
	}
	if signer != nil && previous != "" {
		switch {
		case signer.Name() != origin:
			return fmt.Errorf("verifiable log: the signing key %s is named %q and the previous key %s %q: a log's keys share its name", keyFile, signer.Name(), m.Config.LogPreviousKey, origin)
		case slices.Contains(strings.Split(previous, "\n"), vkey):
			return fmt.Errorf("verifiable log: --log-previous-key %s holds the signing key itself (--log-key %s): give the key the log is rotated from", m.Config.LogPreviousKey, keyFile)
		}
		how := "checkpoints are signed with the new key and the previous one"
		if len(cosigners) == 0 {
			how = "checkpoints are signed with the new key only (the previous key was given as a public key)"
		}
		m.log.InfoContext(ctx, "verifiable log: rotating the signing key: "+how, "key", vkey, "previous", previous)
		vkey = merkle.JoinKeys(vkey, previous)
	}
	lcfg := logsign.Config{Store: ls, Signer: signer, Cosigners: cosigners, VerifierKey: vkey, Logger: m.log,
		VerifierKeyFile: filepath.Join(m.Config.DataDir, logsign.VerificationKeyFile), KeepAllCheckpoints: m.Config.LogKeepCheckpoints}
	if m.Config.WitnessPolicy != "" {
		policy, err := witness.LoadPolicy(m.Config.WitnessPolicy)
		if err != nil {
			return fmt.Errorf("--witness-policy: %w", err)
		}
		if m.witnesses, err = witness.NewCosigner(witness.CosignerConfig{Policy: policy, Logger: m.log}); err != nil {
			return fmt.Errorf("--witness-policy %s: %w", m.Config.WitnessPolicy, err)
		}
		lcfg.Witnesses, lcfg.WitnessInterval = m.witnesses, m.Config.WitnessInterval
		if m.Config.WitnessQuorumRequired {
			lcfg.WitnessQuorum = policy.Check
		}
		var names []string
		for _, w := range policy.Witnesses() {
			names = append(names, w.Name+" "+w.URL)
		}
		m.log.InfoContext(ctx, "verifiable log: witnesses cosign every checkpoint", "witnesses", strings.Join(names, ", "))
	}
	l, err := logsign.New(ctx, lcfg)
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

// watchWitnesses exports what the log's Cosigner knows of each witness.
func watchWitnesses(metrics *server.Metrics, c *witness.Cosigner) {
	for i, w := range c.Stats() {
		stat := func() witness.WitnessStats { return c.Stats()[i] }
		metrics.WatchWitness(w.Name,
			func() uint64 { return stat().Cosigned },
			func() uint64 { return stat().Failures },
			func() uint64 { return stat().Size })
	}
}
