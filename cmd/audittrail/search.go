package main

import (
	"context"
	"errors"
	"io"
)

// SearchCommand implements "audittrail search". (Skeleton: being written.)
type SearchCommand struct {
	Stdout, Stderr io.Writer
}

// Usage returns the help text.
func (c *SearchCommand) Usage() string { return "usage: audittrail search [flags]\n" }

// Run runs the command with the arguments after "search".
func (c *SearchCommand) Run(ctx context.Context, args []string) error {
	return errors.New("search: not implemented yet")
}
