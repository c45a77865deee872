package merkle

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/audittrail/audittrail"
)

// Window is what two consistent checkpoints prove about a receive-time
// window: the events with ReceiveTime in [Start, End) are exactly the events
// with sequence numbers First..Last, that is leaves First-1..Last-1 of the
// later checkpoint's tree. The window is empty when First == Last+1.
//
// It is the log's signed claim. Anyone holding the window's events can check
// it (CheckEvent), and a full audit checks it for every checkpoint.
type Window struct {
	Origin      string
	Start, End  time.Time
	First, Last uint64
	// Size is the size of the later checkpoint's tree (= Last): the tree the
	// events' inclusion proofs are checked against.
	Size uint64
}

// VerifyWindow checks that verified checkpoints start and end are consistent
// (VerifyConsistency with proof) and returns the window between their
// horizons. To cover a receive-time range [a, b), take start with the latest
// horizon at or before a and end with the earliest horizon at or after b.
func VerifyWindow(start, end *Checkpoint, proof *Consistency) (*Window, error) {
	if err := VerifyConsistency(start, end, proof); err != nil {
		return nil, err
	}
	if end.ReceivedBefore.Before(start.ReceivedBefore) {
		return nil, errors.New("merkle: window ends before it starts")
	}
	return &Window{
		Origin: start.Origin,
		Start:  start.ReceivedBefore,
		End:    end.ReceivedBefore,
		First:  start.Size + 1,
		Last:   end.Size,
		Size:   end.Size,
	}, nil
}

// Count returns the number of events of the window.
func (w *Window) Count() uint64 { return w.Last + 1 - w.First }

// CheckCoverage checks that seqs, in any order, are exactly First..Last,
// each once: a drained listing of the window accounted for every one of its
// leaves and for nothing else. (Each listed event must also be proven with
// VerifyEventInclusion against the window's end checkpoint, or a later one
// proven consistent with it.)
func (w *Window) CheckCoverage(seqs []uint64) error {
	if uint64(len(seqs)) != w.Count() {
		return fmt.Errorf("merkle: window has %d events (seq %d..%d), %d were listed", w.Count(), w.First, w.Last, len(seqs))
	}
	s := slices.Clone(seqs)
	slices.Sort(s)
	for i, q := range s {
		if want := w.First + uint64(i); q != want {
			if q < want {
				return fmt.Errorf("merkle: seq %d listed twice or outside the window", q)
			}
			return fmt.Errorf("merkle: seq %d of the window is missing", want)
		}
	}
	return nil
}

// CheckEvent checks an event proven in the log against the window's claim:
// an event inside First..Last must have been received in [Start, End), one
// before First before Start, one after Last at or after End. A failure on a
// proven event is evidence that a signed horizon is false.
func (w *Window) CheckEvent(e *audittrail.Event) error {
	if e == nil || e.Seq == 0 {
		return errors.New("merkle: event without a sequence number")
	}
	rt := e.ReceiveTime
	switch {
	case e.Seq < w.First:
		if !rt.Before(w.Start) {
			return fmt.Errorf("merkle: event seq %d received at %s, not before the window start %s", e.Seq, rt.UTC().Format(HorizonLayout), w.Start.UTC().Format(HorizonLayout))
		}
	case e.Seq > w.Last:
		if rt.Before(w.End) {
			return fmt.Errorf("merkle: event seq %d received at %s, before the window end %s", e.Seq, rt.UTC().Format(HorizonLayout), w.End.UTC().Format(HorizonLayout))
		}
	default:
		if rt.Before(w.Start) || !rt.Before(w.End) {
			return fmt.Errorf("merkle: event seq %d received at %s, outside its window [%s, %s)", e.Seq, rt.UTC().Format(HorizonLayout),
				w.Start.UTC().Format(HorizonLayout), w.End.UTC().Format(HorizonLayout))
		}
	}
	return nil
}
