// Package witness connects the verifiable log to transparency log
// witnesses (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature): independent
// parties that cosign a log's checkpoint only when it is consistent with
// every checkpoint of that log they cosigned before. A verifier that
// requires a quorum of cosignatures knows that the history it is shown is
// the one the witnesses saw, so the log cannot show one history to some
// and another to others (a split view) without also deceiving a quorum of
// witnesses, whose keys it does not hold.
//
// The package has the three parts of that arrangement:
//
//   - Policy: which witnesses there are, where to reach them, and the
//     quorum a checkpoint needs (the Sigsum/Tessera policy file format);
//   - Cosigner: the log's end, which asks every witness to cosign each
//     checkpoint it signs, with a consistency proof from the one the
//     witness cosigned last;
//   - Server: a witness, `audittrail witness`, for organisations that run
//     their own.
//
// Cosignatures are the cosignature/v1 Ed25519 signatures of
// transparency-dev/formats; the note format is golang.org/x/mod's.
// docs/design/verifiable-log.md, "Witnesses", says what is proven.
package witness
