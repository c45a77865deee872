package logsign

// SetProofCacheShape gives l a new, empty proof cache keeping levels >=
// level and the newest tail leaves, so that tests reach the paths of a
// large tree (reads of lower levels) on a small one.
func SetProofCacheShape(l *Log, level int, tail uint64) {
	l.cacheLevel, l.cacheTail = level, tail
	l.proofs.Store(nil)
}
