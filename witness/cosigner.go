package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Prover returns a consistency proof of the log's tree of size old as a
// prefix of its tree of size new (RFC 6962, 2.1.2), as tlog.ProveTree does.
type Prover = func(old, new uint64) ([]tlog.Hash, error)

// CosignerConfig configures a Cosigner.
type CosignerConfig struct {
	Policy *Policy
	// Timeout bounds one add-checkpoint request; 0 means 3 s.
	Timeout time.Duration
	// HTTP is the client of the requests; nil means a client of its own.
	HTTP   *http.Client
	Logger *slog.Logger
	Now    func() time.Time
}

// Cosigner is the log's end of c2sp.org/tlog-witness: it asks every witness
// of a policy to cosign a checkpoint, with a consistency proof from the
// size the witness cosigned last, and returns the checkpoint with the
// cosignatures that came back.
//
// What it knows of each witness is in memory: the size the witness
// cosigned last (learnt from its answers, a 409 telling it when it was
// wrong, as after a restart) and, after a failure, when to try again (1 s,
// doubling to 5 min), so that a witness that is down costs one timeout per
// retry rather than one per checkpoint.
type Cosigner struct {
	cfg   CosignerConfig
	mu    sync.Mutex
	state []witnessState // in the policy's order
}

type witnessState struct {
	known    bool   // size is the witness's, as it last said
	size     uint64 // the size it cosigned last
	failures int    // consecutive failures
	retryAt  time.Time
	lastErr  error
	cosigned uint64 // cosignatures received
	failed   uint64 // requests failed
}

// WitnessStats is what a Cosigner knows of one witness, for metrics.
type WitnessStats struct {
	Name       string
	Size       uint64 // the size it cosigned last, as far as known
	Cosigned   uint64 // cosignatures received
	Failures   uint64 // requests that failed
	LastError  error  // the last failure, nil after a success
	RetryAfter time.Time
}

// NewCosigner returns a Cosigner of the policy's witnesses.
func NewCosigner(cfg CosignerConfig) (*Cosigner, error) {
	if cfg.Policy == nil || len(cfg.Policy.witnesses) == 0 {
		return nil, errors.New("witness: the policy names no witness to ask")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cosigner{cfg: cfg, state: make([]witnessState, len(cfg.Policy.witnesses))}, nil
}

// Stats returns what the Cosigner knows of each witness.
func (c *Cosigner) Stats() []WitnessStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]WitnessStats, len(c.state))
	for i, s := range c.state {
		out[i] = WitnessStats{Name: c.cfg.Policy.witnesses[i].Name, Size: s.size, Cosigned: s.cosigned,
			Failures: s.failed, LastError: s.lastErr, RetryAfter: s.retryAt}
	}
	return out
}

// Cosign asks the witnesses, concurrently, to cosign the signed checkpoint
// cp of the tree of size leaves, and returns cp with the cosignatures it
// got, in the policy's order. A witness that fails is logged and skipped;
// so is one that has cosigned a larger tree than this one (the log signed
// it before a crash lost it: the log is asked again once it has grown
// past). Cosign returns when every witness has answered or failed.
func (c *Cosigner) Cosign(ctx context.Context, cp []byte, size uint64, prove Prover) []byte {
	ws := c.cfg.Policy.witnesses
	lines := make([][]string, len(ws))
	var wg sync.WaitGroup
	now := c.cfg.Now()
	for i := range ws {
		c.mu.Lock()
		st := c.state[i]
		c.mu.Unlock()
		if now.Before(st.retryAt) || (st.known && st.size > size) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.ask(ctx, i, cp, size, prove)
			c.mu.Lock()
			defer c.mu.Unlock()
			s := &c.state[i]
			if err != nil {
				s.failures++
				s.failed++
				s.lastErr = err
				s.retryAt = c.cfg.Now().Add(min(time.Second<<min(s.failures-1, 9), 5*time.Minute))
				c.cfg.Logger.Warn("witness: no cosignature", "witness", ws[i].Name, "url", ws[i].URL,
					"size", size, "failures", s.failures, "retry_in", s.retryAt.Sub(c.cfg.Now()).Round(time.Second), "err", err)
				return
			}
			if s.failures > 0 {
				c.cfg.Logger.Info("witness: cosigning again", "witness", ws[i].Name, "size", size)
			}
			s.failures, s.lastErr, s.retryAt = 0, nil, time.Time{}
			s.known, s.size = true, size
			s.cosigned++
			lines[i] = got
		}()
	}
	wg.Wait()
	out := bytes.Clone(cp)
	for _, l := range lines {
		for _, s := range l {
			out = append(out, s...)
		}
	}
	return out
}

// ask runs the exchange with witness i: a request from the size it is
// believed to hold, and once more if it answers that it holds another
// size this tree extends.
func (c *Cosigner) ask(ctx context.Context, i int, cp []byte, size uint64, prove Prover) ([]string, error) {
	w := c.cfg.Policy.witnesses[i]
	c.mu.Lock()
	old := c.state[i].size // 0 when unknown: the witness answers with its size
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if old > size {
			return nil, fmt.Errorf("the witness has cosigned a tree of %d leaves, larger than this one (%d)", old, size)
		}
		req := &Request{OldSize: old, Checkpoint: cp}
		if old > 0 && old < size {
			proof, err := prove(old, size)
			if err != nil {
				return nil, fmt.Errorf("consistency proof from %d to %d: %w", old, size, err)
			}
			req.Proof = proof
		}
		status, body, ctype, err := c.post(ctx, w.URL, req.Marshal())
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusOK:
			return c.cosignatures(w, cp, body)
		case status == http.StatusConflict && strings.HasPrefix(ctype, SizeContentType) && attempt == 0:
			n, err := parseSize(strings.TrimSuffix(string(body), "\n"))
			if err != nil {
				return nil, fmt.Errorf("409 Conflict with a malformed size: %w", err)
			}
			c.mu.Lock()
			c.state[i].known, c.state[i].size = true, n
			c.mu.Unlock()
			if n == old {
				return nil, errors.New("409 Conflict naming the size it was sent")
			}
			old = n
			continue
		default:
			return nil, fmt.Errorf("%d %s: %s", status, http.StatusText(status), truncate(strings.TrimSpace(string(body)), 200))
		}
	}
}

func (c *Cosigner) post(ctx context.Context, url string, body []byte) (status int, answer []byte, ctype string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, "", err
	}
	return resp.StatusCode, answer, resp.Header.Get("Content-Type"), nil
}

// cosignatures returns the first line of a 200 answer that is a valid
// cosignature by w on cp. Lines by other keys are dropped, as the spec
// asks, and so are further lines by w: a policy counts one per witness,
// and a witness repeating its line (or timestamping many) would otherwise
// push the note past what note.Open and OpenCheckpoint accept (100
// signature lines, 16 KiB), making the stored checkpoint unreadable.
func (c *Cosigner) cosignatures(w Witness, cp, body []byte) ([]string, error) {
	lines, err := signatureLines(body)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if Cosigned(append(bytes.Clone(cp), l...), w.Verifier) {
			return []string{l}, nil
		}
	}
	return nil, fmt.Errorf("the answer holds no valid cosignature by %s", w.KeyName)
}
