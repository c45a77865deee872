package pebblestore

import (
	"container/list"
	"sync"
)

// regexCache keeps the results of evaluating a regular expression over a
// dictionary (a bitset of the matching ids), so that the pages of one search,
// and repeated searches, evaluate it only over values added since. Entries
// are immutable once stored; a search that must cover newer values builds a
// new entry and stores it in place of the old one. Bounded by bytes, LRU.
type regexCache struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	ll    *list.List
	m     map[string]*list.Element
}

// regexCacheBytes is the cache budget: 16 MiB holds the bitsets of ~130
// regexes over a million-value dictionary.
const regexCacheBytes = 16 << 20

type regexEntry struct {
	key  string
	bits []uint64 // bit id set: value id matches
	n    int      // ids below n were evaluated
}

func (e *regexEntry) size() int64 { return int64(len(e.bits)*8 + len(e.key) + 64) }

func newRegexCache(max int64) *regexCache {
	return &regexCache{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

func (c *regexCache) get(key string) *regexEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[key]
	if el == nil {
		return nil
	}
	c.ll.MoveToFront(el)
	return el.Value.(*regexEntry)
}

// put stores e unless the cache holds an entry covering more values.
func (c *regexCache) put(e *regexEntry) {
	if e.size() > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.m[e.key]; el != nil {
		old := el.Value.(*regexEntry)
		if old.n >= e.n {
			return
		}
		c.bytes -= old.size()
		el.Value = e
		c.ll.MoveToFront(el)
	} else {
		c.m[e.key] = c.ll.PushFront(e)
	}
	c.bytes += e.size()
	for c.bytes > c.max {
		el := c.ll.Back()
		old := el.Value.(*regexEntry)
		c.ll.Remove(el)
		delete(c.m, old.key)
		c.bytes -= old.size()
	}
}
