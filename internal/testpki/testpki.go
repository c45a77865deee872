// Package testpki makes certificates for tests: a CA, server certificates
// for 127.0.0.1 and client certificates signed by it (ECDSA P-256, valid for
// an hour either side of now), as PEM bytes or files in the test's temporary
// directory.
package testpki

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
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority of one test.
type CA struct {
	Cert  *x509.Certificate
	PEM   []byte         // Cert in PEM
	Pool  *x509.CertPool // trusts Cert
	File  string         // PEM in a file
	key   *ecdsa.PrivateKey
	dir   string
	tb    testing.TB
	names map[string]int
}

// New returns a new CA whose files go to a temporary directory of tb.
func New(tb testing.TB) *CA {
	tb.Helper()
	k := newKey(tb)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Pool: x509.NewCertPool(),
		key: k, dir: tb.TempDir(), tb: tb, names: map[string]int{}}
	ca.Pool.AddCert(cert)
	ca.File = ca.write("ca.crt", ca.PEM)
	return ca
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Issue returns a certificate for name with the serial number and its key,
// in PEM: a server's (for 127.0.0.1 and name) or, with client, a client's
// (name as its common name and DNS name).
func (ca *CA) Issue(serial int64, name string, client bool) (certPEM, keyPEM []byte) {
	ca.tb.Helper()
	k := newKey(ca.tb)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.key)
	if err != nil {
		ca.tb.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		ca.tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// IssueFiles is Issue written to files (name.crt, name.key; a name issued
// again gets new files, name-2.crt, ...).
func (ca *CA) IssueFiles(serial int64, name string, client bool) (certFile, keyFile string) {
	ca.tb.Helper()
	c, k := ca.Issue(serial, name, client)
	ca.names[name]++
	base := name
	if n := ca.names[name]; n > 1 {
		base = name + "-" + big.NewInt(int64(n)).String()
	}
	return ca.write(base+".crt", c), ca.write(base+".key", k)
}

// KeyPair is Issue as a tls.Certificate.
func (ca *CA) KeyPair(serial int64, name string, client bool) tls.Certificate {
	ca.tb.Helper()
	c, k := ca.Issue(serial, name, client)
	kp, err := tls.X509KeyPair(c, k)
	if err != nil {
		ca.tb.Fatal(err)
	}
	return kp
}

func (ca *CA) write(name string, b []byte) string {
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		ca.tb.Fatal(err)
	}
	return path
}
