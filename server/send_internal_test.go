package server

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// bufConn is a connection that reads from in and writes to out.
type bufConn struct {
	net.Conn
	in, out bytes.Buffer
}

func (c *bufConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *bufConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *bufConn) Close() error                { return nil }

// zframe is a frame of n zero bytes of payload (frame: split_test.go).
func zframe(typ, flags byte, stream uint32, n int) []byte {
	return frame(typ, flags, stream, make([]byte, n))
}

// TestSendWatch: the watch follows the answers under way from the frames
// the transport writes, split anywhere, and forgets the streams the client
// resets (the transport drops their answers, writing nothing more): such a
// stream must not keep the connection under watch.
func TestSendWatch(t *testing.T) {
	c := &bufConn{}
	w := newSendWatch(c, time.Hour, func() { t.Error("cut") })
	defer w.Close()
	var out []byte
	out = append(out, zframe(frameSettings, 0, 0, 6)...)
	out = append(out, zframe(frameHeaders, flagEndHeaders, 1, 20)...)
	out = append(out, zframe(frameHeaders, flagEndHeaders, 3, 20)...)
	out = append(out, zframe(frameData, 0, 1, 16384)...)
	out = append(out, zframe(frameHeaders, flagEndHeaders|flagEndStream, 5, 20)...) // trailers-only
	for len(out) > 0 {                                                              // in pieces of 1000 bytes: frame headers split across writes
		n := min(len(out), 1000)
		w.Write(out[:n])
		out = out[n:]
	}
	if _, ok := w.ans[3]; len(w.ans) != 2 || w.ans[1].taken != 16384 || !ok {
		t.Fatalf("answers under way: %v, want streams 1 (16384 bytes taken) and 3", w.ans)
	}
	// The client resets stream 3, after its preface and settings.
	c.in.WriteString(http2Preface)
	c.in.Write(zframe(frameSettings, 0, 0, 12))
	c.in.Write(zframe(frameRSTStream, 0, 3, 4))
	buf := make([]byte, 7) // in small reads
	for c.in.Len() > 0 {
		w.Read(buf)
	}
	if _, ok := w.ans[1]; len(w.ans) != 1 || !ok {
		t.Fatalf("answers under way after the client reset stream 3: %v, want stream 1", w.ans)
	}
	// 64 KiB of DATA are progress; END_STREAM ends the answer.
	w.Write(zframe(frameData, 0, 1, responseChunk-16384))
	if a, ok := w.ans[1]; !ok || a.taken != 0 || a.since.IsZero() {
		t.Fatalf("stream 1 after 64 KiB: %+v, want progress noted (taken 0)", a)
	}
	w.Write(zframe(frameHeaders, flagEndHeaders|flagEndStream, 1, 10))
	if len(w.ans) != 0 {
		t.Fatalf("answers under way after the trailers: %v", w.ans)
	}
}

// discardConn reads nothing and takes every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) Close() error                { return nil }

// BenchmarkSendWatch is the watch's cost on the writes of gRPC's transport:
// per write of an answer of 2 KiB (HEADERS, DATA, trailers, one write as
// the transport's buffered writer makes), against the same write unwatched.
func BenchmarkSendWatch(b *testing.B) {
	var write []byte
	write = append(write, zframe(frameHeaders, flagEndHeaders, 1, 30)...)
	write = append(write, zframe(frameData, 0, 1, 2048)...)
	write = append(write, zframe(frameHeaders, flagEndHeaders|flagEndStream, 1, 20)...)
	for _, watched := range []bool{false, true} {
		name := "unwatched"
		if watched {
			name = "watched"
		}
		b.Run(name, func(b *testing.B) {
			var c net.Conn = discardConn{}
			if watched {
				w := newSendWatch(c, time.Minute, nil)
				defer w.Close()
				c = w
			}
			b.SetBytes(int64(len(write)))
			for b.Loop() {
				c.Write(write)
			}
		})
	}
}
