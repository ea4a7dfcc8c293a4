package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/blixard/blixard/p2p"
	"github.com/blixard/blixard/scheduler"
	"github.com/blixard/blixard/scheduler/constraint"
	"github.com/blixard/blixard/scheduler/httpapi"
)

// DefaultAPI is where the peer's API listens and the CLI looks for it.
const DefaultAPI = "127.0.0.1:7700"

func defaultDataDir() string {
	if d := os.Getenv("BLIXARD_DATA_DIR"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".blixard")
	}
	return ".blixard"
}

var apiFlag = &cli.StringFlag{
	Name:    "api",
	Usage:   "`HOST:PORT` of the local peer's API",
	EnvVars: []string{"BLIXARD_API"},
	Value:   DefaultAPI,
}

func dataDirFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "data-dir",
		Usage:   "`DIR` for the peer's identity, mesh secret and store",
		EnvVars: []string{"BLIXARD_DATA_DIR"},
		Value:   defaultDataDir(),
	}
}

func peerCommand() *cli.Command {
	return &cli.Command{
		Name:  "peer",
		Usage: "run a peer: join a mesh (or start one) and take work",
		Flags: []cli.Flag{
			dataDirFlag(),
			&cli.StringSliceFlag{
				Name:  "listen",
				Usage: "`MULTIADDR` to listen on (QUIC), repeatable; default every address, random port",
			},
			&cli.StringFlag{
				Name:    "join",
				Usage:   "join the mesh of this `TOKEN` (from 'blixard token')",
				EnvVars: []string{"BLIXARD_JOIN"},
			},
			&cli.StringSliceFlag{
				Name:  "bootstrap",
				Usage: "`MULTIADDR` of a peer (with /p2p/ID) to connect to, repeatable",
			},
			&cli.BoolFlag{Name: "no-mdns", Usage: "do not look for peers on the local network"},
			apiFlag,
			&cli.StringSliceFlag{
				Name: "executor",
				Usage: "executor `NAME` to offer (exec, noop, docker, wasm), repeatable; " +
					"default all four (docker only while its daemon answers)",
			},
			&cli.StringSliceFlag{
				Name:  "plugin",
				Usage: "offer executor NAME backed by the plugin program at PATH (`NAME=PATH`), repeatable",
			},
			&cli.StringSliceFlag{Name: "label", Usage: "`KEY=VALUE` label to advertise, repeatable"},
			&cli.IntFlag{Name: "slots", Usage: "tasks to run at once (default: number of CPUs)"},
			&cli.DurationFlag{
				Name:  "lease",
				Usage: "lease a runner holds a job for between heartbeats",
				Value: scheduler.DefaultLease,
			},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
		},
		Action: runPeer,
	}
}

func runPeer(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("peer: unexpected argument %q", c.Args().First())
	}
	log, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	// Check the API address before the peer takes the data dir.
	if err := httpapi.CheckAddr(c.String("api"), false); err != nil {
		return usagef("--api: %v", err)
	}
	cfg, err := peerConfig(c, log)
	if err != nil {
		return err
	}
	// Hold the API port first: a peer that cannot serve its API should
	// not have created a mesh.
	ln, err := httpapi.Bind(c.String("api"), false)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := scheduler.New(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	srv := httpapi.Serve(p, ln, log)
	os.WriteFile(filepath.Join(cfg.DataDir, "api.addr"), []byte(srv.Addr()+"\n"), 0o600)
	log.Info("peer ready", "peer", p.ID(), "api", srv.Addr(), "addrs", strings.Join(p.Addrs(), " "))
	if cfg.Join == "" {
		log.Info("join token (give it to other peers with --join)", "token", p.Token())
	}
	<-ctx.Done()
	log.Info("shutting down")
	srv.Close()
	return p.Close()
}

// peerConfig builds a peer's configuration from flags, validating each
// so that bad input fails before anything is written.
func peerConfig(c *cli.Context, log *slog.Logger) (scheduler.Config, error) {
	cfg := scheduler.Config{
		DataDir: c.String("data-dir"),
		Join:    strings.TrimSpace(c.String("join")),
		MDNS:    !c.Bool("no-mdns"),
		Slots:   c.Int("slots"),
		Lease:   c.Duration("lease"),
		Logger:  log,
		Labels:  map[string]string{},
	}
	if cfg.Slots < 0 {
		return cfg, usagef("--slots %d: want at least 1", cfg.Slots)
	}
	for _, s := range c.StringSlice("listen") {
		if _, err := multiaddr.NewMultiaddr(s); err != nil {
			return cfg, usagef("--listen %q: %v", s, err)
		}
		if !strings.HasSuffix(s, "/quic-v1") || !strings.Contains(s, "/udp/") {
			return cfg, usagef("--listen %q: want a QUIC address such as /ip4/0.0.0.0/udp/4001/quic-v1", s)
		}
		cfg.Listen = append(cfg.Listen, s)
	}
	for _, s := range c.StringSlice("bootstrap") {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return cfg, usagef("--bootstrap %q: %v", s, err)
		}
		cfg.Bootstrap = append(cfg.Bootstrap, s)
	}
	if cfg.Join != "" {
		if _, err := p2p.ParseToken(cfg.Join); err != nil {
			return cfg, usagef("--join: %v", err)
		}
	}
	for _, l := range c.StringSlice("label") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return cfg, usagef("--label %q: want KEY=VALUE", l)
		}
		if err := constraint.ValidLabel(k, v); err != nil {
			return cfg, usagef("--label %q: %v", l, err)
		}
		cfg.Labels[k] = v
	}
	names, plugins := c.StringSlice("executor"), c.StringSlice("plugin")
	if err := checkExecutors(names, plugins); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	// Everything else is valid: only now touch the data dir.
	if err := checkDataDir(cfg.DataDir); err != nil {
		return cfg, err
	}
	execs, err := buildExecutors(cfg.DataDir, names, plugins, log)
	if err != nil {
		return cfg, err
	}
	cfg.Executors = execs
	return cfg, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	return slog.New(h), nil
}

func idCommand() *cli.Command {
	return &cli.Command{
		Name:  "id",
		Usage: "print the peer's ID (from --data-dir, or the running peer at --api)",
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "data-dir",
				Usage:   "`DIR` of the peer",
				EnvVars: []string{"BLIXARD_DATA_DIR"},
			},
			apiFlag,
		},
		Action: func(c *cli.Context) error {
			if dir := c.String("data-dir"); dir != "" {
				key, err := p2p.LoadIdentity(scheduler.IdentityPath(dir))
				if err != nil {
					return err
				}
				id, err := peer.IDFromPrivateKey(key)
				if err != nil {
					return err
				}
				fmt.Println(id)
				return nil
			}
			self, err := client(c).Self(c.Context)
			if err != nil {
				return err
			}
			fmt.Println(self.ID)
			return nil
		},
	}
}

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "print the mesh's join token (a secret: share it only with peers you trust)",
		Flags: []cli.Flag{apiFlag},
		Action: func(c *cli.Context) error {
			self, err := client(c).Self(c.Context)
			if err != nil {
				return err
			}
			fmt.Println(self.Token)
			return nil
		},
	}
}

func client(c *cli.Context) *httpapi.Client {
	return httpapi.NewClient(c.String("api"))
}

// checkDataDir makes sure dir exists (mode 0700) and can be written.
func checkDataDir(dir string) error {
	if dir == "" {
		return usagef("--data-dir: required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return usagef("--data-dir %s: %v", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-")
	if err != nil {
		return usagef("--data-dir %s: not writable: %v", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}
