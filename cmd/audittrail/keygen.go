package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
)

// KeygenCommand implements "audittrail keygen": a new signing key for the
// verifiable log, for a first start with a key kept as a secret, or for a
// rotation (docs/configuration.md, "Rotating the log's signing key").
type KeygenCommand struct {
	Stdout, Stderr io.Writer
}

const keygenSynopsis = `usage: audittrail keygen [--origin NAME] FILE

Creates FILE (mode 0600; an existing file is never replaced) holding a new
Ed25519 signing key for the verifiable log, and prints its public key on
standard output: the line to give verifiers (a log-verification.key).

Give FILE to the servers with --log-key: to start a new log, or, with the
log's current key as --log-previous-key, to rotate the log's key (every
PostgreSQL replica gets the same FILE).

The key's name is the log's origin, the first line of every checkpoint; a
log's keys share it. The servers name their keys ` + logsign.DefaultOrigin + `.

Examples:
  audittrail keygen /secrets/log-signing-2027.key > log-signing-2027.pub

Exit status: 0 created, 1 error (the file exists, cannot be written), 2 bad usage.
`

func newKeygenFlags(origin *string) *flag.FlagSet {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.StringVar(origin, "origin", logsign.DefaultOrigin, "the key's `name`: the log's origin")
	return fs
}

// Usage returns the help text.
func (c *KeygenCommand) Usage() string {
	var origin string
	return usageText(keygenSynopsis, newKeygenFlags(&origin))
}

// Run runs the command with the arguments after "keygen".
func (c *KeygenCommand) Run(ctx context.Context, args []string) error {
	var origin string
	fset := newKeygenFlags(&origin)
	if err := parseFlags(fset, args, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	switch {
	case fset.NArg() != 1:
		return usageErrorf("give the file to create (see -h)")
	case !merkle.ValidOrigin(origin):
		return usageErrorf("--origin %q: a name of 1 to 255 printable bytes, without spaces or '+'", origin)
	}
	vkey, err := logsign.CreateKeyFile(fset.Arg(0), origin)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: a key file is never replaced", fset.Arg(0))
	} else if err != nil {
		return err
	}
	fmt.Fprintln(c.Stdout, vkey)
	return nil
}
