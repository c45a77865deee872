package main

import (
	"context"
	"errors"
	"io"
)

// CreateCommand implements "audittrail create". (Skeleton: being written.)
type CreateCommand struct {
	Stdout, Stderr io.Writer
}

// Usage returns the help text.
func (c *CreateCommand) Usage() string { return "usage: audittrail create [flags]\n" }

// Run runs the command with the arguments after "create".
func (c *CreateCommand) Run(ctx context.Context, args []string) error {
	return errors.New("create: not implemented yet")
}
