// Command guest is a WASI preview 1 test program for the wasm executor.
// Its first argument selects what it does; see the cases in main.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fail(2, "usage: guest MODE [ARGS...]")
	}
	arg := func(i int) string {
		if len(os.Args) <= i {
			fail(2, "mode %s needs argument %d", os.Args[1], i-1)
		}
		return os.Args[i]
	}
	switch os.Args[1] {
	case "args":
		for _, a := range os.Args {
			fmt.Println(a)
		}
	case "env":
		env := os.Environ()
		sort.Strings(env)
		for _, kv := range env {
			fmt.Println(kv)
		}
	case "cat":
		copyOrFail(os.Stdout, os.Stdin)
	case "cat-err":
		copyOrFail(os.Stderr, os.Stdin)
	case "exit":
		code, err := strconv.Atoi(arg(2))
		if err != nil {
			fail(2, "exit code: %v", err)
		}
		os.Exit(code)
	case "write":
		if err := os.WriteFile(arg(2), []byte(arg(3)), 0o644); err != nil {
			fail(3, "write: %v", err)
		}
	case "read":
		b, err := os.ReadFile(arg(2))
		if err != nil {
			fail(4, "read: %v", err)
		}
		os.Stdout.Write(b)
	case "alloc":
		alloc(arg(2))
	case "spin":
		for {
		}
	case "sleep":
		d, err := time.ParseDuration(arg(2))
		if err != nil {
			fail(2, "sleep: %v", err)
		}
		time.Sleep(d)
	case "trap":
		// An address past the end of linear memory traps in the engine.
		p := (*byte)(unsafe.Pointer(uintptr(0xfffffff0)))
		fmt.Println(*p)
	case "clock":
		fmt.Println(time.Now().Unix())
	case "rand":
		b := make([]byte, 16)
		rand.Read(b)
		fmt.Println(hex.EncodeToString(b))
	default:
		fail(2, "unknown mode %q", os.Args[1])
	}
}

var sink [][]byte

// alloc allocates and touches the given number of MiB.
func alloc(s string) {
	mib, err := strconv.Atoi(s)
	if err != nil {
		fail(2, "alloc: %v", err)
	}
	for i := 0; i < mib; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		sink = append(sink, b)
	}
	fmt.Println("allocated", len(sink), "MiB")
}

func copyOrFail(w io.Writer, r io.Reader) {
	if _, err := io.Copy(w, r); err != nil {
		fail(5, "copy: %v", err)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}
