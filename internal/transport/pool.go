package transport

import (
	"context"
	"sync"
)

// Dial connects to one host: over SSH, or locally for ansible_connection=local.
func Dial(ctx context.Context, t Target, o Options, keys *HostKeyStore) (Conn, error) {
	o = o.withDefaults()
	if t.Local {
		return newLocal(t, o), nil
	}
	if keys == nil {
		keys = NewHostKeyStore(o.KnownHostsFile, o.AcceptNewHostKeys)
	}
	if t.Port == 0 {
		t.Port = 22
	}
	c, err := dialSSH(ctx, t, o, keys)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return c, nil
}

// Pool keeps one connection per host for a whole run.
type Pool struct {
	o     Options
	keys  *HostKeyStore
	mu    sync.Mutex
	conns map[string]*poolEntry
}

type poolEntry struct {
	once sync.Once
	conn Conn
	err  error
}

// NewPool returns an empty pool.
func NewPool(o Options) *Pool {
	o = o.withDefaults()
	return &Pool{o: o, keys: NewHostKeyStore(o.KnownHostsFile, o.AcceptNewHostKeys), conns: map[string]*poolEntry{}}
}

// Get returns the host's connection, dialing it on first use. A failed dial is remembered for
// the run: the host is down for every later task too.
func (p *Pool) Get(ctx context.Context, t Target) (Conn, error) {
	p.mu.Lock()
	e, ok := p.conns[t.Name]
	if !ok {
		e = &poolEntry{}
		p.conns[t.Name] = e
	}
	p.mu.Unlock()
	e.once.Do(func() { e.conn, e.err = Dial(ctx, t, p.o, p.keys) })
	return e.conn, e.err
}

// CloseAll closes every connection.
func (p *Pool) CloseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.conns {
		if e.conn != nil {
			_ = e.conn.Close()
		}
	}
	p.conns = map[string]*poolEntry{}
}
