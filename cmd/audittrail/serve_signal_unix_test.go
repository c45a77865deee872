//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/testserver"
)

// TestServeSecondSignalWhileStarting: a second SIGTERM ends the process at
// once also while the server is still starting (Pebble's Open replaying a
// large WAL, moving a store to a new format, or stuck on a full disk does
// not watch the context), as serve's help promises. The start is held here
// by a page token key that is a FIFO no one writes to. Before, every signal
// after the first was swallowed until the start was over, and a stuck start
// could be ended only by SIGKILL.
func TestServeSecondSignalWhileStarting(t *testing.T) {
	dataDir := t.TempDir()
	fifo := filepath.Join(dataDir, pageTokenKeyFile)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cmd := exec.Command(testserver.Binary(t), "serve", "--data-dir", dataDir, "--public-addr", "127.0.0.1:0",
		"--internal-addr", "127.0.0.1:0", "--reader-token", "r", "--producer-token", "p")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	// The server reads the key once its signal handling is set up: a writer
	// can open the FIFO without blocking only when it does. Opened and left
	// silent, the FIFO holds the server in its read.
	var w *os.File
	for deadline := time.Now().Add(30 * time.Second); w == nil; {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		switch {
		case err == nil:
			w = f
		case time.Now().After(deadline):
			t.Fatalf("the server did not open its page token key: %v", err)
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer w.Close()
	for i := range 2 {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if i == 0 {
				t.Logf("the first SIGTERM ended the start: %v", err)
			}
			done <- err
			return
		case <-time.After(2 * time.Second):
		}
	}
	t.Fatal("the server still runs 2 s after a second SIGTERM")
}
