// Command audittrail is the audit trail service and its command-line client:
// "serve" runs the server, "search" and "create" talk to a running one.
package main

func main() {}
