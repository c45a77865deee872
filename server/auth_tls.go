package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/audittrail/audittrail"
)

// TLSConfig is the TLS of a listener, from PEM files that are reloaded when
// they change (a renewed certificate is picked up without a restart).
type TLSConfig struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, asks clients for a certificate and verifies
	// it against these CAs (mutual TLS). RequireClientCert refuses
	// connections without one; otherwise a client without a certificate
	// authenticates with a bearer token.
	ClientCAFile      string
	RequireClientCert bool
}

// CertMapper maps the verified client certificate of a mutual TLS connection
// to its principal.
type CertMapper func(cert *x509.Certificate) (*audittrail.Principal, error)

// CertServicePrincipal returns the service principal a client certificate
// names: "services/<name>" with the name taken from the first DNS subject
// alternative name, or else the subject's common name. A URI SAN of the form
// "spiffe://<domain>/services/<name>" or ".../ns/<ns>/sa/<name>" names
// "services/<name>" too.
func CertServicePrincipal(cert *x509.Certificate) (string, error) {
	for _, u := range cert.URIs {
		path := strings.Trim(u.Path, "/")
		parts := strings.Split(path, "/")
		if len(parts) >= 2 && (parts[len(parts)-2] == "services" || parts[len(parts)-2] == "sa") {
			return "services/" + parts[len(parts)-1], nil
		}
	}
	name := cert.Subject.CommonName
	if len(cert.DNSNames) > 0 {
		name = cert.DNSNames[0]
	}
	p := "services/" + name
	if name == "" || audittrail.ValidatePrincipalName(p) != nil {
		return "", errors.New("the client certificate names no service")
	}
	return p, nil
}

// reloadingTLS serves a certificate (and client CAs) from files, re-reading
// them when their modification time or size changes; at most one check per
// second.
type reloadingTLS struct {
	cfg TLSConfig

	mu      sync.Mutex
	checked time.Time
	stamp   string
	cert    *tls.Certificate
	pool    *x509.CertPool
}

func newReloadingTLS(cfg TLSConfig) (*reloadingTLS, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("TLS needs a certificate file and a key file")
	}
	r := &reloadingTLS{cfg: cfg}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func fileStamp(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", p, fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return b.String()
}

func (r *reloadingTLS) load() error {
	stamp := fileStamp(r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile)
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	var pool *x509.CertPool
	if r.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(r.cfg.ClientCAFile)
		if err != nil {
			return fmt.Errorf("TLS client CAs: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("TLS client CAs: no certificate in %s", r.cfg.ClientCAFile)
		}
	}
	r.cert, r.pool, r.stamp = &cert, pool, stamp
	return nil
}

// current returns the certificate and pool, reloading changed files. A
// broken file keeps the previous ones (logged by the caller's handshake
// failing is worse than serving the old certificate until it is fixed).
func (r *reloadingTLS) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		if fileStamp(r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile) != r.stamp {
			_ = r.load()
		}
	}
	return r.cert, r.pool
}

// CertificateReloader returns a tls.Config.GetCertificate serving the
// certificate of certFile and keyFile, read again when either changes (at
// most one check per second; a broken file keeps the previous one), as the
// server's own listeners do, for other servers (audittrail witness).
func CertificateReloader(certFile, keyFile string) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	r, err := newReloadingTLS(TLSConfig{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		return nil, err
	}
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, _ := r.current()
		return cert, nil
	}, nil
}

// tlsConfig returns the listener's tls.Config.
func (r *reloadingTLS) tlsConfig() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := r.current()
		c := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*cert},
			NextProtos:   []string{"h2", "http/1.1"},
		}
		if pool != nil {
			c.ClientCAs = pool
			c.ClientAuth = tls.VerifyClientCertIfGiven
			if r.cfg.RequireClientCert {
				c.ClientAuth = tls.RequireAndVerifyClientCert
			}
		}
		return c, nil
	}
	return base
}
