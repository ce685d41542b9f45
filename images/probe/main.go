// Command probe is a tiny network probe for verifying a cluster, shipped as a FROM-scratch
// container image (kinstall.local/probe:v1):
//
//	probe serve [-listen :8080]                  answer every HTTP request with "hello from <hostname>"
//	probe get URL [-timeout 5s] [-retries N]     print the body; exit 0 on HTTP 200, else 1
//	probe sleep                                  block until SIGTERM or SIGINT
//
// It handles SIGTERM itself: as a container's PID 1 a signal without a handler would be ignored
// and the pod would wait out its grace period.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const usage = `usage:
  probe serve [-listen :8080]
  probe get URL [-timeout 5s] [-retries N]
  probe sleep`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(ctx, args)
	case "get":
		err = get(ctx, args)
	case "sleep":
		<-ctx.Done()
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", ":8080", "address to listen on")
	fs.Parse(args)
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "hello from %s\n", host)
		})}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func get(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of each attempt")
	retries := fs.Int("retries", 0, "attempts after the first one fails, 1 s apart")
	// Flags may come before or after the URL (flag stops at the first non-flag argument).
	fs.Parse(args)
	if fs.NArg() < 1 {
		return errors.New("get: missing URL\n" + usage)
	}
	url := fs.Arg(0)
	fs.Parse(fs.Args()[1:])
	if fs.NArg() > 0 {
		return fmt.Errorf("get: unexpected arguments %q", fs.Args())
	}
	client := &http.Client{Timeout: *timeout}
	var err error
	for i := 0; ; i++ {
		var body []byte
		if body, err = fetch(ctx, client, url); err == nil {
			_, err = os.Stdout.Write(body)
			return err
		}
		if i >= *retries || ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "probe: %v (retrying)\n", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

func fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
