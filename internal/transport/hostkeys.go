package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is a host key that was refused.
type HostKeyError struct {
	Addr    string
	File    string
	Changed bool // the host presented a different key than the one recorded
	Key     ssh.PublicKey
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("HOST KEY CHANGED for %s: it no longer matches %s (someone may be intercepting the connection, or the host was reinstalled). If the change is expected, remove the old line with: ssh-keygen -R '%s' -f %s", e.Addr, e.File, knownhosts.Normalize(e.Addr), e.File)
	}
	host, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("unknown host key for %s (%s %s): not in %s. Verify it, then add it with: ssh-keyscan -p %s %s >> %s, or run with --accept-new-host-keys",
		e.Addr, e.Key.Type(), ssh.FingerprintSHA256(e.Key), e.File, port, host, e.File)
}

// HostKeyStore checks host keys against one known_hosts file for a whole run, and records
// new keys when allowed. One store serves every connection, so its mutex keeps concurrent
// first contacts from corrupting the file.
type HostKeyStore struct {
	file      string
	acceptNew bool
	mu        sync.Mutex
}

// NewHostKeyStore returns a store over a known_hosts file.
func NewHostKeyStore(file string, acceptNew bool) *HostKeyStore {
	return &HostKeyStore{file: file, acceptNew: acceptNew}
}

// callback returns the host key check for one address and the key algorithms to ask for
// (those recorded for the host, so the server doesn't offer a different, unrecorded type).
func (s *HostKeyStore) callback(addr string) (ssh.HostKeyCallback, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.file), 0o700); err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(s.file); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(s.file, nil, 0o600); err != nil {
			return nil, nil, err
		}
	}
	known, err := knownhosts.New(s.file)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts %s: %w", s.file, err)
	}
	algos := recordedAlgorithms(known, addr)
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		// Re-read: another connection of this run may have recorded the key meanwhile.
		known, err := knownhosts.New(s.file)
		if err != nil {
			return err
		}
		err = known(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) > 0 {
				return &HostKeyError{Addr: hostname, File: s.file, Changed: true, Key: key}
			}
			if !s.acceptNew {
				return &HostKeyError{Addr: hostname, File: s.file, Key: key}
			}
			return s.record(hostname, key)
		}
		return err
	}
	return cb, algos, nil
}

func (s *HostKeyStore) record(hostname string, key ssh.PublicKey) error {
	f, err := os.OpenFile(s.file, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
	return err
}

// recordedAlgorithms asks the known_hosts callback with a throwaway key: the KeyError lists
// the keys recorded for the address.
func recordedAlgorithms(known ssh.HostKeyCallback, addr string) []string {
	err := known(addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(t)
		default:
			add(t)
		}
	}
	return algos
}

// probeKey is a key no host has.
type probeKey struct{}

func (probeKey) Type() string                            { return "kinstall-probe" }
func (probeKey) Marshal() []byte                         { return []byte("kinstall-probe") }
func (probeKey) Verify(_ []byte, _ *ssh.Signature) error { return errors.New("probe") }
