package bench

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/audittrail/audittrail/internal/testpki"
)

// BenchmarkTLSLoopback copies 4 MiB (about a drain of 10,000 events over
// gRPC) from a server to a client over loopback in 32 KiB writes, plain and
// with TLS 1.3: what Go's TLS costs on this machine, both ends on its cores
// (docs/design/performance.md, "TLS").
func BenchmarkTLSLoopback(b *testing.B) {
	ca := testpki.New(b)
	serverCert := ca.KeyPair(2, "server", false)
	for _, withTLS := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "tls"}[withTLS]
		b.Run(name, func(b *testing.B) {
			const total = 4 << 20
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if withTLS {
					c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{serverCert}})
				}
				buf := make([]byte, 32<<10)
				var ask [1]byte
				for {
					if _, err := io.ReadFull(c, ask[:]); err != nil {
						return
					}
					for sent := 0; sent < total; sent += len(buf) {
						if _, err := c.Write(buf); err != nil {
							return
						}
					}
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			if withTLS {
				c = tls.Client(c, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
			}
			defer c.Close()
			buf := make([]byte, 32<<10)
			b.SetBytes(total)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write([]byte{1}); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < total; {
					n, err := c.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}
