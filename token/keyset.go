package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// remoteKeySet is an oidc.KeySet over an issuer's JWKS URL. Keys are cached;
// a token whose kid is not in the cache triggers a refresh, at most one per
// minRefresh (so that tokens with made-up kids cannot make us hammer the
// issuer), and the cache is refreshed when older than maxAge (so that keys
// the issuer dropped stop verifying). Concurrent refreshes are coalesced.
type remoteKeySet struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time
	algs       []jose.SignatureAlgorithm

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	fetched     time.Time // of the keys in the cache
	lastAttempt time.Time
	inflight    chan struct{}
	fetchErr    error

	// fetches counts JWKS requests (tests).
	fetches int
}

// errUnknownKey is the error of a token signed by no key the issuer
// publishes.
var errUnknownKey = errors.New("no key of the issuer verifies the token (unknown kid)")

func (r *remoteKeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, r.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("a token must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, fresh := r.cached()
	if p, found, err := verifyWith(jws, keys, kid); found {
		return p, err
	}
	if fresh {
		return nil, errUnknownKey
	}
	keys, err = r.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if p, found, err := verifyWith(jws, keys, kid); found {
		return p, err
	}
	return nil, errUnknownKey
}

// verifyWith verifies jws with the key of kid (every key when the token has
// no kid). found reports whether a candidate key existed; err is then the
// verification's result. Only asymmetric public signing keys take part: a
// symmetric key in a JWKS is ignored, so an HMAC token can never verify.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, found bool, err error) {
	alg := jws.Signatures[0].Header.Algorithm
	for i := range keys {
		k := &keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		found = true
		if p, e := jws.Verify(k); e == nil {
			return p, true, nil
		}
	}
	if found {
		return nil, true, errors.New("bad signature")
	}
	return nil, false, nil
}

// cached returns the cached keys, and whether a refresh is not allowed now
// (one happened less than minRefresh ago) and the cache is not too old.
func (r *remoteKeySet) cached() ([]jose.JSONWebKey, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	recent := !r.lastAttempt.IsZero() && now.Sub(r.lastAttempt) < r.minRefresh
	if !r.fetched.IsZero() && r.maxAge > 0 && now.Sub(r.fetched) > r.maxAge {
		return nil, recent
	}
	return r.keys, recent
}

// refresh fetches the JWKS (or waits for the fetch in flight) unless one was
// attempted less than minRefresh ago, and returns the keys.
func (r *remoteKeySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	r.mu.Lock()
	if r.inflight == nil {
		if !r.lastAttempt.IsZero() && r.now().Sub(r.lastAttempt) < r.minRefresh {
			keys, err := r.keys, r.fetchErr
			r.mu.Unlock()
			return keys, err
		}
		r.lastAttempt = r.now()
		r.fetches++
		done := make(chan struct{})
		r.inflight = done
		go func() {
			keys, err := r.fetch()
			r.mu.Lock()
			r.fetchErr = err
			if err == nil {
				r.keys, r.fetched = keys, r.now()
			}
			r.inflight = nil
			r.mu.Unlock()
			close(done)
		}()
	}
	done := r.inflight
	r.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-done:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys, r.fetchErr
}

func (r *remoteKeySet) fetch() ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the JWKS: %s answered %s", r.url, resp.Status)
	}
	// Keys the library cannot parse (other key types, unsupported curves)
	// are skipped one by one rather than failing the whole set.
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("the JWKS at %s is not JSON: %w", r.url, err)
	}
	var keys []jose.JSONWebKey
	for _, k := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(k); err != nil || !key.Valid() || !key.IsPublic() {
			continue
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// staticKeySet verifies with fixed public keys (the built-in issuer's).
type staticKeySet struct {
	keys func() []jose.JSONWebKey
	algs []jose.SignatureAlgorithm
}

func (s *staticKeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, s.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("a token must have exactly one signature")
	}
	p, found, err := verifyWith(jws, s.keys(), jws.Signatures[0].Header.KeyID)
	if !found {
		return nil, errUnknownKey
	}
	return p, err
}

// isHMAC reports whether alg is a symmetric algorithm.
func isHMAC(alg string) bool { return strings.HasPrefix(strings.ToUpper(alg), "HS") }
