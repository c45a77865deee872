package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// benchTLS is the TLS of a run with Config.TLS: a self-signed certificate
// for 127.0.0.1, which both listeners serve and every client trusts (and
// verifies), as a deployment with its own CA would.
type benchTLS struct {
	CertFile, KeyFile string
	roots             *x509.CertPool
}

// newBenchTLS writes an ECDSA P-256 certificate and key into dir.
func newBenchTLS(dir string) (*benchTLS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "auditbench"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	t := &benchTLS{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"), roots: x509.NewCertPool()}
	t.roots.AddCert(cert)
	if err := os.WriteFile(t.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(t.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return nil, err
	}
	return t, nil
}

// serverFlags are the flags of `audittrail serve` for both listeners.
func (t *benchTLS) serverFlags() []string {
	return []string{"--public-tls-cert", t.CertFile, "--public-tls-key", t.KeyFile,
		"--internal-tls-cert", t.CertFile, "--internal-tls-key", t.KeyFile}
}

// httpClient is NewHTTPClient over TLS, HTTP/1.1 only: what the Python
// client (requests) speaks, as over a plain listener.
func (t *benchTLS) httpClient() *http.Client {
	c := NewHTTPClient()
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig = &tls.Config{RootCAs: t.roots}
	var p http.Protocols
	p.SetHTTP1(true)
	tr.Protocols = &p
	return c
}
