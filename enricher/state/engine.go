package state

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

// Engine is the Table implementation. Its methods are safe for concurrent
// use (a mutex is taken per call, not per event), but Enrich is meant to be
// called by one goroutine per node, in stream order.
type Engine struct {
	mu sync.Mutex
	// warmSink keeps table.warm's sum (its loads must not be elided).
	warmSink uint64
	cfg      Config
	t        table
	tombs    tombstones
	neg      negCache
	intern   interner

	scratch     []byte
	lookupsLeft int // this batch; negative: unlimited
	st          Stats
	containers  map[uint64]string // cgroup id → container id
}

const (
	fieldsExec    = event.FieldName | event.FieldExePath | event.FieldCmdline
	fieldsInherit = event.FieldExePath | event.FieldCmdline
)

// NewEngine returns an Engine configured by cfg.
func NewEngine(cfg Config) *Engine {
	cfg = cfg.withDefaults()
	return &Engine{
		cfg:    cfg,
		t:      newTable(cfg.MaxProcs),
		tombs:  newTombstones(cfg.MaxTombstones),
		neg:    newNegCache(cfg.NegativeCacheSize),
		intern: newInterner(8192),

		containers: map[uint64]string{},
	}
}

// Seed implements Table.
func (e *Engine) Seed(procs []event.ProcInfo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.t.reset()
	e.tombs.reset()
	e.neg.reset()
	for i := range procs {
		en := e.snapshotEntry(&procs[i])
		if idx, ok := e.t.get(en.pid); ok { // duplicate pid: the later wins
			e.t.replace(idx, en)
			continue
		}
		e.makeRoom()
		e.t.insert(en)
	}
}

// Merge implements Table.
func (e *Engine) Merge(procs []event.ProcInfo) MergeResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	var r MergeResult
	for i := range procs {
		p := &procs[i]
		idx, ok := e.t.get(p.Pid)
		if !ok {
			if e.tombs.has(p.Pid, p.StartNs) {
				r.Stale++ // its exit was seen: the snapshot is older than the state
				continue
			}
			e.makeRoom()
			e.t.insert(e.snapshotEntry(p))
			r.Applied++
			continue
		}
		en := &e.t.slab[idx]
		switch {
		case event.SameStart(en.startNs, p.StartNs):
			// The same process. Its known image stands: a snapshot carries
			// no exec counter, so it cannot show itself newer than an exec
			// the events applied. Its container is part of that image: a
			// process does not change cgroup namespace by exec, and a
			// snapshot that moves a live process into (or out of) a
			// container would relabel every later event of it.
			if en.exited {
				r.Agreed++
				continue
			}
			if en.containerKnown && en.container != p.ContainerID {
				r.Contradicting++
				r.ContradictingContainer++
				continue
			}
			if en.comm == p.Comm && en.exe == p.ExePath && (en.cmdline == p.Cmdline || en.missing&event.FieldCmdline != 0) {
				if !en.containerKnown {
					// The state could not resolve it: the snapshot's /proc did.
					en.container, en.containerKnown = e.intern.str(p.ContainerID), true
				}
				r.Agreed++
				continue
			}
			if en.missing != 0 && en.source != event.SourceSnapshot && en.comm == p.Comm {
				// Fields the state could not know: the snapshot fills them.
				e.t.replace(idx, e.snapshotEntry(p))
				r.Applied++
				continue
			}
			r.Contradicting++
		case p.StartNs < en.startNs:
			r.Stale++ // an older holder of the pid than the state's
		default:
			// A newer holder of the pid than the state's: the state's exit
			// was lost.
			if !en.exited {
				e.st.PidReuseDetected++
			}
			e.t.replace(idx, e.snapshotEntry(p))
			r.Applied++
		}
	}
	return r
}

func (e *Engine) snapshotEntry(p *event.ProcInfo) entry {
	return entry{
		pid: p.Pid, ppid: p.PPid, uid: p.UID, gid: p.GID, startNs: p.StartNs,
		comm:      e.intern.str(p.Comm),
		exe:       e.intern.str(p.ExePath),
		cmdline:   e.intern.str(p.Cmdline),
		container: e.intern.str(p.ContainerID),
		// The snapshot's /proc cgroup: known ("" is the host).
		containerKnown: true,
		source:         event.SourceSnapshot,
		// exec id unknown: adopted from the first event seen.
		fromProc: true,
	}
}

// Snapshot implements Table. It returns the live processes whose metadata is
// complete and current; processes with missing fields (parent unknown) or an
// observed lost exec are left out, so that a new owner seeded from it looks
// them up or reports them missing instead of showing partial or stale data.
func (e *Engine) Snapshot() []event.ProcInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]event.ProcInfo, 0, e.t.nLive)
	for i := e.t.live.head; i != nilIdx; i = e.t.slab[i].next {
		en := &e.t.slab[i]
		if en.missing != 0 || en.noExecAhead != 0 {
			continue
		}
		out = append(out, event.ProcInfo{
			Pid: en.pid, PPid: en.ppid, UID: en.uid, GID: en.gid, StartNs: en.startNs,
			Comm: en.comm, ExePath: en.exe, Cmdline: en.cmdline,
		})
	}
	slices.SortFunc(out, func(a, b event.ProcInfo) int { return cmp.Compare(a.Pid, b.Pid) })
	return out
}

// Stats implements Table.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st
	s.Procs = e.t.len()
	s.Live = e.t.nLive
	s.Tombstones = e.tombs.len()
	s.NegativeEntries = e.neg.len()
	return s
}

// Enrich implements Table.
func (e *Engine) Enrich(ctx context.Context, b *event.Batch, out []event.Enriched) []event.Enriched {
	start := len(out)
	out = slices.Grow(out, len(b.Events))
	for i := range b.Events {
		out = append(out, event.Enriched{Event: b.Events[i]})
	}
	e.EnrichInPlace(ctx, b, out[start:])
	return out
}

// EnrichInPlace implements Table. It is Enrich without the copy of every
// raw event into its Enriched (about a fifth of the enricher's per-event
// cost with a large table): the codec decodes the raw events straight into
// evs (event.Codec.DecodeEnrichable).
func (e *Engine) EnrichInPlace(ctx context.Context, b *event.Batch, evs []event.Enriched) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.Batches++
	e.lookupsLeft = e.cfg.MaxLookupsPerBatch
	e.warmSink += e.t.warm(evs)
	for i := range evs {
		o := &evs[i]
		ev := &o.Event
		switch ev.Type {
		case event.TypeFork:
			if ev.Flags&event.FlagThread != 0 {
				e.st.ThreadForks++
			} else {
				e.applyFork(ctx, ev)
			}
		case event.TypeExec:
			e.applyExec(ev)
			if ev.OldPid != 0 && ev.OldPid != ev.Tid {
				// A non-leader thread exec'ed and took the leader's id:
				// thread OldPid ended here, with no exit record of its own.
				e.st.NonLeaderExecs++
				e.st.ThreadExits++
			}
		case event.TypeSyscall:
			e.countABI(ev)
			if ev.Ret == 0 {
				e.applyCreds(ev)
			}
		case event.TypeCgroup:
			e.applyCgroup(ev)
		}
		e.enrich(ctx, b, evs, i, o)
		if ev.Type == event.TypeExit {
			if ev.Flags&event.FlagGroupDead != 0 {
				e.applyExit(ev)
			} else {
				e.st.ThreadExits++
			}
		}
		e.count(o)
	}
}

func (e *Engine) count(o *event.Enriched) {
	e.st.Events++
	e.st.BySource[o.Source&(NumSourceSlots-1)]++
	if o.Missing == 0 {
		return
	}
	e.st.Missing++
	e.st.MissingByReason[min(int(o.Reason), NumReasonSlots-1)]++
	for f := 0; f < NumFields; f++ {
		if o.Missing&(1<<f) != 0 {
			e.st.MissingByField[f]++
		}
	}
}

// enrich fills o (event i of evs, the events of batch b) from the table.
// The Event part of every element of evs is the raw event, unchanged by
// enrichment, so the look-ahead reads later elements as raw records.
func (e *Engine) enrich(ctx context.Context, b *event.Batch, evs []event.Enriched, i int, o *event.Enriched) {
	stale := false
	if idx, ok := e.t.get(o.Pid); ok {
		en := &e.t.slab[idx]
		if en.matches(o.StartNs) {
			e.t.touch(idx)
			if !en.execKnown {
				// From the snapshot: adopt the exec id, and the exact start.
				en.execID, en.execKnown = o.ExecID, true
				en.startNs, en.fromProc = o.StartNs, false
			}
			if o.ExecID > en.execID {
				e.execDropped(ctx, evs, i, en, o)
				return
			}
			fill(o, en)
			if o.ExecID < en.execID {
				// Made before the exec whose image the table holds: that
				// image would be wrong for it. Identity fields still hold.
				setMissing(o, fieldsExec, event.ReasonOutOfOrder)
				e.hints(o)
				return
			}
			if o.Missing != 0 {
				e.hints(o)
			}
			return
		}
		// A record of an older process than the one now holding the pid
		// arrived late: the entry is right for the newer one, keep it.
		if o.StartNs < en.startNs && !en.fromProc {
			setMissing(o, event.AllFields, event.ReasonOutOfOrder)
			e.hints(o)
			return
		}
		// Another process holds the pid. If it had not exited, its exit was
		// lost: it is stale and must not lend its metadata.
		if !en.exited {
			stale = true
			e.st.PidReuseDetected++
		}
		e.t.remove(idx)
	}
	e.unknown(ctx, b, evs, i, o, stale)
}

func fill(o *event.Enriched, en *entry) {
	o.ProcPPid = en.ppid
	o.ProcUID = en.uid
	o.ProcGID = en.gid
	o.ProcName = en.comm
	o.ProcExePath = en.exe
	o.ProcCmdline = en.cmdline
	o.ContainerID = en.container
	o.Source = en.source
	if en.missing != 0 {
		setMissing(o, en.missing, en.reason)
	}
}

// setMissing marks fields missing with reason r and zeroes them.
func setMissing(o *event.Enriched, f event.Field, r event.Reason) {
	o.Missing |= f
	o.Reason = r
	if f&event.FieldPPid != 0 {
		o.ProcPPid = 0
	}
	if f&event.FieldUID != 0 {
		o.ProcUID, o.ProcGID = 0, 0
	}
	if f&event.FieldName != 0 {
		o.ProcName = ""
	}
	if f&event.FieldExePath != 0 {
		o.ProcExePath = ""
	}
	if f&event.FieldCmdline != 0 {
		o.ProcCmdline = ""
	}
}

// execDropped handles an event of a known process carrying a newer exec id
// than the table: the exec record was lost (or is just ahead in the batch).
func (e *Engine) execDropped(ctx context.Context, evs []event.Enriched, i int, en *entry, o *event.Enriched) {
	if en.noExecAhead != o.ExecID {
		if j := e.ahead(evs, i, false); j >= 0 {
			e.fillFromRecord(ctx, o, &evs[j].Event)
			return
		}
		en.noExecAhead = o.ExecID
	}
	o.ProcPPid, o.ProcUID, o.ProcGID = en.ppid, en.uid, en.gid
	o.Source = en.source
	// Never the pre-exec name, path or command line.
	setMissing(o, fieldsExec|(en.missing&^fieldsExec), event.ReasonExecDropped)
	e.hints(o)
}

// ahead searches the next ReorderWindow events of evs for the fork (if
// allowFork) or exec record that created the state event i needs.
func (e *Engine) ahead(evs []event.Enriched, i int, allowFork bool) int {
	w := e.cfg.ReorderWindow
	if w <= 0 {
		return -1
	}
	ev := &evs[i].Event
	end := min(len(evs), i+1+w)
	for j := i + 1; j < end; j++ {
		c := &evs[j].Event
		if c.Pid != ev.Pid || c.StartNs != ev.StartNs || c.ExecID != ev.ExecID {
			continue
		}
		if c.Type == event.TypeExec || (allowFork && c.Type == event.TypeFork && c.Flags&event.FlagThread == 0) {
			return j
		}
	}
	return -1
}

// fillFromRecord enriches o from its process's own fork or exec record found
// later in the batch, without touching the table (the record is applied
// when it is reached).
func (e *Engine) fillFromRecord(ctx context.Context, o *event.Enriched, c *event.Event) {
	e.st.Reordered++
	o.ProcPPid, o.ProcUID, o.ProcGID = c.PPid, c.UID, c.GID
	o.ProcName = e.comm(c)
	o.ContainerID = e.container(c.CgroupID)
	o.Source = event.SourceState
	if c.Type == event.TypeExec {
		o.ProcExePath = e.intern.bytes(c.Exe)
		o.ProcCmdline = e.cmdline(c.Args)
		return
	}
	e.lookupForker(ctx, c)
	exe, cmd, miss, r := e.inherit(c, false)
	o.ProcExePath, o.ProcCmdline = exe, cmd
	if miss != 0 {
		setMissing(o, miss, r)
		e.hints(o)
	}
}

type lookupResult uint8

const (
	lookupNone    lookupResult = iota // no Lookup configured
	lookupHit                         // entry inserted
	lookupMiss                        // not found, or another process
	lookupFailed                      // error or timeout
	lookupSkipped                     // budget spent or caller's ctx done
)

// unknown handles an event whose process has no usable entry.
func (e *Engine) unknown(ctx context.Context, b *event.Batch, evs []event.Enriched, i int, o *event.Enriched, stale bool) {
	key := pidStart{o.Pid, o.StartNs}
	if r, ok := e.neg.get(key); ok {
		e.st.NegativeHits++
		setMissing(o, event.AllFields, r)
		e.hints(o)
		return
	}
	if j := e.ahead(evs, i, true); j >= 0 {
		e.fillFromRecord(ctx, o, &evs[j].Event)
		return
	}
	res := e.lookup(ctx, o)
	if res == lookupHit {
		idx, _ := e.t.get(o.Pid)
		fill(o, &e.t.slab[idx])
		return
	}
	var r event.Reason
	switch {
	case e.tombs.has(o.Pid, o.StartNs):
		r = event.ReasonEvicted
	case stale:
		// Ranked before fork_dropped: the refused entry is this pid's own
		// evidence (its previous owner's exit was lost, and so was this
		// process's fork, or the fork would have replaced the entry).
		r = event.ReasonPidReused
	case o.StartNs >= b.SensorStartNs && b.Counters.Dropped[event.CategoryLifecycle] > 0:
		r = event.ReasonForkDropped
	case res == lookupMiss:
		r = event.ReasonProcGone
	case res == lookupFailed || res == lookupSkipped:
		r = event.ReasonLookupFailed
	default:
		r = event.ReasonNoState
	}
	if res != lookupSkipped {
		e.neg.put(key, r)
	}
	setMissing(o, event.AllFields, r)
	e.hints(o)
}

// lookup asks the sensor for o's process and inserts it on success.
func (e *Engine) lookup(ctx context.Context, o *event.Enriched) lookupResult {
	return e.lookupProc(ctx, o.Pid, o.StartNs, o.ExecID)
}

// lookupForker makes sure the process that forked ev (a fork record) is in
// the table, asking the sensor for it when it is not. Without its entry the
// child would inherit nothing (parent_unknown) although the forker is most
// often alive: a table that lost it, for example one seeded by a take-over
// from a fresh /proc snapshot that has not arrived yet, or whose own fork
// record the ring dropped. The record names the forker's start time, so
// /proc's answer is checked against it; a miss is negative-cached like any
// other.
func (e *Engine) lookupForker(ctx context.Context, ev *event.Event) {
	forker := ev.ForkerPid
	if forker == 0 {
		forker = ev.PPid
	}
	if e.cfg.Lookup == nil || forker == 0 || ev.ForkerStartNs == 0 {
		return
	}
	if idx, ok := e.t.get(forker); ok {
		en := &e.t.slab[idx]
		if en.matches(ev.ForkerStartNs) || en.startNs > ev.ForkerStartNs {
			// Known, or held by a newer process: nothing /proc can add.
			return
		}
	}
	key := pidStart{forker, ev.ForkerStartNs}
	if _, ok := e.neg.get(key); ok {
		e.st.NegativeHits++
		return
	}
	e.st.ForkerLookups++
	// The child starts with the forker's exec counter, so ev.ExecID is the
	// forker's. A miss is cached with the reason the forker's own events
	// would get.
	switch e.lookupProc(ctx, forker, ev.ForkerStartNs, ev.ExecID) {
	case lookupMiss:
		e.neg.put(key, event.ReasonProcGone)
	case lookupFailed:
		e.neg.put(key, event.ReasonLookupFailed)
	}
}

// lookupProc asks the sensor for process (pid, start), whose exec counter
// is execID, and inserts it on success.
func (e *Engine) lookupProc(ctx context.Context, pid uint32, startNs uint64, execID uint32) lookupResult {
	if e.cfg.Lookup == nil {
		return lookupNone
	}
	if e.lookupsLeft == 0 || ctx.Err() != nil {
		e.st.LookupsSkipped++
		return lookupSkipped
	}
	if e.lookupsLeft > 0 {
		e.lookupsLeft--
	}
	e.st.Lookups++
	lctx, cancel := context.WithTimeout(ctx, e.cfg.LookupTimeout)
	info, err := e.cfg.Lookup.Lookup(lctx, pid)
	lerr := lctx.Err()
	cancel()
	switch {
	case err == nil && (info.Pid == pid || info.Pid == 0) && event.SameStart(info.StartNs, startNs):
		e.st.LookupHits++
		if idx, ok := e.t.get(pid); ok {
			// An older holder of the pid: its exit was lost.
			if !e.t.slab[idx].exited {
				e.st.PidReuseDetected++
			}
			e.t.remove(idx)
		}
		e.makeRoom()
		e.t.insert(entry{
			pid: pid, ppid: info.PPid, uid: info.UID, gid: info.GID,
			// The record's exact start: /proc's matched within tolerance.
			startNs:   startNs,
			comm:      e.intern.str(info.Comm),
			exe:       e.intern.str(info.ExePath),
			cmdline:   e.intern.str(info.Cmdline),
			container: e.intern.str(info.ContainerID),
			// /proc's cgroup: known ("" is the host).
			containerKnown: true,
			source:         event.SourceLookup,
			execID:         execID, execKnown: true,
		})
		return lookupHit
	case err == nil || errors.Is(err, ErrNotFound):
		e.st.LookupMisses++
		return lookupMiss
	}
	e.st.LookupErrors++
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(lerr, context.DeadlineExceeded) {
		e.st.LookupTimeouts++
		// The sensor is slow or gone: do not stall the rest of the batch
		// on it (each lookup could take LookupTimeout again).
		e.lookupsLeft = 0
	}
	if ctx.Err() != nil {
		return lookupSkipped // the caller gave up; not the process's fault
	}
	return lookupFailed
}

// hints fills missing name, ppid and uid from a syscall record that carries
// them (FlagHints): a format older sensors wrote; the probe now replays the
// lost fork or exec record instead (applyFork, applyExec).
func (e *Engine) hints(o *event.Enriched) {
	if o.Flags&event.FlagHints == 0 || o.Missing&(event.FieldName|event.FieldPPid|event.FieldUID) == 0 {
		return
	}
	if o.Missing&event.FieldName != 0 {
		o.ProcName = e.comm(&o.Event)
		o.Missing &^= event.FieldName
	}
	if o.Missing&event.FieldPPid != 0 {
		o.ProcPPid = o.PPid
		o.Missing &^= event.FieldPPid
	}
	if o.Missing&event.FieldUID != 0 {
		o.ProcUID, o.ProcGID = o.UID, o.GID
		o.Missing &^= event.FieldUID
	}
	o.Source = event.SourceHints
	if o.Missing == 0 {
		o.Reason = event.ReasonNone
	}
}

// makeRoom evicts until an entry can be inserted.
func (e *Engine) makeRoom() {
	for e.t.len() >= e.cfg.MaxProcs {
		v := e.t.victim()
		if v == nilIdx {
			return
		}
		en := &e.t.slab[v]
		e.st.Evictions++
		if !en.exited {
			e.st.EvictionsLive++
		}
		e.tombs.add(en)
		e.t.remove(v)
	}
}

// put stores en under its pid: replacing an entry of the same process or a
// stale one, or inserting.
func (e *Engine) put(en entry) {
	e.neg.forget(pidStart{en.pid, en.startNs})
	if idx, ok := e.t.get(en.pid); ok {
		old := &e.t.slab[idx]
		if !old.matches(en.startNs) && !old.exited {
			e.st.PidReuseDetected++ // its exit was lost
		}
		e.t.replace(idx, en)
		return
	}
	e.makeRoom()
	e.t.insert(en)
}

func (e *Engine) applyFork(ctx context.Context, ev *event.Event) {
	e.st.Forks++
	if idx, ok := e.t.get(ev.Pid); ok {
		if e.t.slab[idx].matches(ev.StartNs) {
			// Already known (seeded from /proc after the fork, looked up, or
			// a duplicate record): that view is at least as new. Keep it.
			return
		}
	}
	child := entry{
		pid: ev.Pid, ppid: ev.PPid, uid: ev.UID, gid: ev.GID, startNs: ev.StartNs,
		execID: ev.ExecID, execKnown: true,
		comm:   e.comm(ev),
		source: event.SourceState,
	}
	child.container, child.containerKnown = e.containerOf(ev.CgroupID)
	e.lookupForker(ctx, ev)
	child.exe, child.cmdline, child.missing, child.reason = e.inherit(ev, true)
	if ev.Flags&event.FlagHints != 0 {
		child.source = event.SourceHints // a replay of a lost fork
	}
	e.put(child)
}

// inherit returns the exe path and command line a forked child inherits
// from its parent, or which of them are missing and why. The parent entry
// must agree with the child's exec counter (a child starts with its
// parent's); otherwise it is stale or outdated and lends nothing.
func (e *Engine) inherit(ev *event.Event, apply bool) (exe, cmd string, miss event.Field, r event.Reason) {
	// The child's image is the forking process's (its parent, unless
	// CLONE_PARENT). Records that name the forker also give its start time,
	// which tells it apart from an old or new holder of the same pid.
	forker := ev.ForkerPid
	if forker == 0 {
		forker = ev.PPid
	}
	pi, ok := e.t.get(forker)
	if !ok {
		return "", "", fieldsInherit, event.ReasonParentUnknown
	}
	p := &e.t.slab[pi]
	if ev.ForkerStartNs != 0 && !p.matches(ev.ForkerStartNs) {
		return "", "", fieldsInherit, event.ReasonParentUnknown
	}
	// A parent that exited, or started after the child, is not the parent
	// that forked it but an old or new holder of its pid: lend nothing.
	if p.exited || (!p.fromProc && p.startNs > ev.StartNs) {
		return "", "", fieldsInherit, event.ReasonParentUnknown
	}
	if apply {
		e.t.touch(pi)
		if !p.execKnown {
			p.execID, p.execKnown = ev.ExecID, true
		}
	}
	if p.execKnown && ev.ExecID != p.execID {
		if ev.ExecID > p.execID {
			return "", "", fieldsInherit, event.ReasonExecDropped
		}
		return "", "", fieldsInherit, event.ReasonParentUnknown
	}
	if m := p.missing & fieldsInherit; m != 0 {
		exe, cmd = p.exe, p.cmdline
		if m&event.FieldExePath != 0 {
			exe = ""
		}
		if m&event.FieldCmdline != 0 {
			cmd = ""
		}
		return exe, cmd, m, p.reason
	}
	return p.exe, p.cmdline, 0, event.ReasonNone
}

func (e *Engine) applyExec(ev *event.Event) {
	e.st.Execs++
	if idx, ok := e.t.get(ev.Pid); ok {
		if old := &e.t.slab[idx]; old.matches(ev.StartNs) && old.execKnown && old.execID > ev.ExecID {
			return // a newer exec is already applied (records out of order)
		}
	}
	en := entry{
		pid: ev.Pid, ppid: ev.PPid, uid: ev.UID, gid: ev.GID, startNs: ev.StartNs,
		execID: ev.ExecID, execKnown: true,
		comm:    e.comm(ev),
		exe:     e.intern.bytes(ev.Exe),
		cmdline: e.cmdline(ev.Args),
		source:  event.SourceState,
	}
	if ev.Flags&event.FlagHints != 0 {
		en.source = event.SourceHints // a replay of a lost exec
	}
	en.container, en.containerKnown = e.containerOf(ev.CgroupID)
	e.put(en)
}

// container is the container id of cgroup id, resolved once per id through
// Config.Containers and cached ("" without a resolver, or when it fails).
func (e *Engine) container(id uint64) string {
	c, _ := e.containerOf(id)
	return c
}

// containerOf is container, and whether the id is known: false without a
// resolver, without a cgroup id, or when the resolution failed.
func (e *Engine) containerOf(id uint64) (string, bool) {
	if id == 0 || e.cfg.Containers == nil {
		return "", false
	}
	if c, ok := e.containers[id]; ok {
		return c, true
	}
	if len(e.containers) >= maxContainerCache {
		clear(e.containers) // cgroups come and go: start over
	}
	e.st.ContainerLookups++
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LookupTimeout)
	c, err := e.cfg.Containers.ContainerID(ctx, id)
	cancel()
	if err != nil {
		e.st.ContainerLookupErrors++
		return "", false // not cached: a later record tries again
	}
	c = e.intern.str(c)
	e.containers[id] = c
	return c, true
}

// maxContainerCache bounds the cgroup id → container id cache.
const maxContainerCache = 4096

// countABI counts syscall events of a compat ABI, and those no table names
// (see Stats.CompatSyscalls).
func (e *Engine) countABI(ev *event.Event) {
	abi := ev.SyscallABI()
	if abi != syscalls.Native() {
		e.st.CompatSyscalls++
	}
	if _, ok := syscalls.Normalize(abi, ev.Syscall); !ok {
		e.st.UnnamedSyscalls++
	}
}

// applyCreds follows a successful setuid-family syscall, as Falco does:
// without it a worker that drops root (nginx, sshd, postgres) would keep
// showing uid 0 — known, but wrong. The records are sys_exit records, so
// the new ids are already in force for this event. Linux ids are per
// thread, but glibc applies them to every thread of the process, so the
// process entry follows.
func (e *Engine) applyCreds(ev *event.Event) {
	cred, ok := syscalls.Cred(ev.SyscallABI(), ev.Syscall)
	if !ok {
		return
	}
	id, ok := cred.NewID(ev.SysArgs) // false: -1, leave unchanged
	if !ok {
		return
	}
	idx, found := e.t.get(ev.Pid)
	if !found || !e.t.slab[idx].matches(ev.StartNs) {
		return
	}
	en := &e.t.slab[idx]
	if cred.Kind == syscalls.UID {
		en.uid = id
	} else {
		en.gid = id
	}
	e.st.CredChanges++
}

// applyCgroup moves a known process to the record's cgroup: its later
// events carry the new container.id. The table keeps one container per
// process, as Falco's thread table keeps the cgroups a process was moved to;
// a move of one thread (FlagThread, cgroup v2 threaded mode) is applied to
// its process too. The record's own enrichment, like every event's, is
// what the table says after it.
func (e *Engine) applyCgroup(ev *event.Event) {
	idx, found := e.t.get(ev.Pid)
	if !found || !e.t.slab[idx].matches(ev.StartNs) {
		return
	}
	e.t.slab[idx].container = e.container(ev.CgroupID)
	e.st.CgroupMoves++
}

func (e *Engine) applyExit(ev *event.Event) {
	e.st.Exits++
	if idx, ok := e.t.get(ev.Pid); ok && e.t.slab[idx].matches(ev.StartNs) {
		e.t.markExited(idx)
	}
}

// comm returns the record's comm, shared.
func (e *Engine) comm(ev *event.Event) string {
	n := 0
	for n < len(ev.Comm) && ev.Comm[n] != 0 {
		n++
	}
	return e.intern.bytes(ev.Comm[:n])
}

// cmdline joins NUL-separated argv with spaces (trailing NULs dropped), as
// Falco's proc.cmdline shows it, shared.
func (e *Engine) cmdline(args []byte) string {
	for len(args) > 0 && args[len(args)-1] == 0 {
		args = args[:len(args)-1]
	}
	if len(args) == 0 {
		return ""
	}
	e.scratch = append(e.scratch[:0], args...)
	for i, c := range e.scratch {
		if c == 0 {
			e.scratch[i] = ' '
		}
	}
	return e.intern.bytes(e.scratch)
}
