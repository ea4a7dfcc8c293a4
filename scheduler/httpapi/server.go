// Package httpapi serves a peer's API over HTTP on loopback, for the CLI
// and for scripts, and is the client the CLI uses.
//
// Routes (JSON unless noted):
//
//	GET  /v1/self                 {id, addrs, token}
//	GET  /v1/peers                [announcement]
//	GET  /v1/stats                counters
//	POST /v1/jobs                 spec -> {id}
//	GET  /v1/jobs                 [event]
//	GET  /v1/jobs/{id}            status
//	GET  /v1/jobs/{id}/wait       status, once the job has ended
//	POST /v1/jobs/{id}/cancel     {}
//	GET  /v1/jobs/{id}/logs       raw output; ?stream=stdout|stderr&follow=1&attempt=N
//	POST /v1/modules              raw WASM bytes -> {module}
//	POST /v1/drain, /v1/undrain   {}
//
// Errors are {"error": "..."} with 400 for bad input, 404 for an unknown
// job and 500 otherwise.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/blixard/blixard/scheduler"
)

// Server serves one peer's API.
type Server struct {
	peer *scheduler.Peer
	log  *slog.Logger
	srv  *http.Server
	ln   net.Listener
}

// Listen binds addr (host:port; port 0 picks one) and starts serving. It
// refuses addresses that are not loopback unless public is set: the API
// has no authentication of its own.
func Listen(peer *scheduler.Peer, addr string, public bool, log *slog.Logger) (*Server, error) {
	ln, err := Bind(addr, public)
	if err != nil {
		return nil, err
	}
	return Serve(peer, ln, log), nil
}

// Bind checks addr as CheckAddr does and listens on it, so that a caller
// can hold the port before it starts a peer.
func Bind(addr string, public bool) (net.Listener, error) {
	if err := CheckAddr(addr, public); err != nil {
		return nil, fmt.Errorf("api address %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves peer's API on ln until Close.
func Serve(peer *scheduler.Peer, ln net.Listener, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{peer: peer, log: log.With("component", "api"), ln: ln}
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api stopped", "err", err)
		}
	}()
	return s
}

// CheckAddr validates an API address: host:port, and on loopback unless
// public is set, since the API has no authentication of its own.
func CheckAddr(addr string, public bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if ip := net.ParseIP(host); !public && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: not a loopback address; the API has no authentication", addr)
	}
	return nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, waiting briefly for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/self", s.self)
	mux.HandleFunc("GET /v1/peers", s.peers)
	mux.HandleFunc("GET /v1/stats", s.stats)
	mux.HandleFunc("POST /v1/jobs", s.submit)
	mux.HandleFunc("GET /v1/jobs", s.jobs)
	mux.HandleFunc("GET /v1/jobs/{id}", s.status)
	mux.HandleFunc("GET /v1/jobs/{id}/wait", s.wait)
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", s.cancel)
	mux.HandleFunc("GET /v1/jobs/{id}/logs", s.logs)
	mux.HandleFunc("POST /v1/modules", s.module)
	mux.HandleFunc("POST /v1/drain", s.drain(true))
	mux.HandleFunc("POST /v1/undrain", s.drain(false))
	return mux
}

// Self is what GET /v1/self answers.
type Self struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	Token string   `json:"token"`
}

func (s *Server) self(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Self{ID: s.peer.ID(), Addrs: s.peer.Addrs(), Token: s.peer.Token()})
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.peer.Peers())
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.peer.Stats())
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, scheduler.MaxSpecBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest,
			fmt.Errorf("spec: larger than %d bytes", scheduler.MaxSpecBytes))
		return
	}
	spec, err := scheduler.ParseSpec(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id, err := s.peer.Submit(r.Context(), spec)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	evs, err := s.peer.Jobs(r.Context(), limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, evs)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	j, err := s.peer.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, j.Status())
}

func (s *Server) wait(w http.ResponseWriter, r *http.Request) {
	j, err := s.peer.Wait(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, j.Status())
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	if err := s.peer.Cancel(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stream := scheduler.Stdout
	switch q.Get("stream") {
	case "", "stdout":
	case "stderr":
		stream = scheduler.Stderr
	default:
		writeError(w, http.StatusBadRequest,
			fmt.Errorf("stream %q: want stdout or stderr", q.Get("stream")))
		return
	}
	attempt, _ := strconv.Atoi(q.Get("attempt"))
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	id := r.PathValue("id")
	var off int64
	wrote := false
	for {
		data, next, done, err := s.peer.Logs(r.Context(), id, attempt, stream, off, 1<<20)
		if err != nil {
			if !wrote {
				writeError(w, statusOf(err), err)
			}
			return
		}
		if !wrote {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			wrote = true
		}
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return
			}
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		off = next
		if len(data) > 0 {
			continue
		}
		if !follow || done {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) module(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, scheduler.MaxModuleBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest,
			fmt.Errorf("module: larger than %d bytes", scheduler.MaxModuleBytes))
		return
	}
	ref, err := s.peer.AddModule(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"module": ref})
}

func (s *Server) drain(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.peer.Drain(on)
		writeJSON(w, http.StatusOK, struct{}{})
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, scheduler.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, scheduler.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var ve *scheduler.SpecError
	if errors.As(err, &ve) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
