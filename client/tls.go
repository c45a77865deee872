package client

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// clientCert presents a certificate read from PEM files, reading them again
// when they change (checked at most once a second, at a handshake), so that a
// producer whose certificate is renewed on disk (cert-manager, a SPIFFE
// agent) uses the new one for its next connections without a new Client. A
// pair that no longer loads (caught between the two files' writes) keeps the
// previous certificate until it does.
type clientCert struct {
	certFile, keyFile string

	mu      sync.Mutex
	checked time.Time
	stamp   string
	cert    *tls.Certificate
}

func newClientCert(certFile, keyFile string) (*clientCert, error) {
	c := &clientCert{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.checked = time.Now()
	return c, nil
}

// stampOf says when and how the files last changed.
func (c *clientCert) stampOf() string {
	var s string
	for _, p := range []string{c.certFile, c.keyFile} {
		if fi, err := os.Stat(p); err == nil {
			s += fmt.Sprintf("%d:%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return s
}

func (c *clientCert) load() error {
	stamp := c.stampOf()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cert, c.stamp = &cert, stamp
	return nil
}

// get is the tls.Config's GetClientCertificate.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= time.Second {
		c.checked = now
		if c.stampOf() != c.stamp {
			_ = c.load()
		}
	}
	return c.cert, nil
}
