// Command wordcount counts the lines, words and bytes of its input, like
// wc: of stdin when it has no arguments, else of each file it names. It
// is an example workload for Blixard's wasm executor; build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -o wordcount.wasm ./examples/wasm/wordcount
//
// It also builds and runs as an ordinary program on the host.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"unicode"
)

// counts are the totals of one input.
type counts struct {
	lines, words, bytes int
}

func (c *counts) add(o counts) {
	c.lines += o.lines
	c.words += o.words
	c.bytes += o.bytes
}

// count reads r to the end. A word is a run of bytes other than Unicode
// white space; a line is counted at each newline, as wc does.
func count(r io.Reader) (counts, error) {
	var c counts
	br := bufio.NewReader(r)
	inWord := false
	for {
		ch, size, err := br.ReadRune()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		c.bytes += size
		if ch == '\n' {
			c.lines++
		}
		space := unicode.IsSpace(ch)
		if !space && !inWord {
			c.words++
		}
		inWord = !space
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run counts stdin, or the files in args, prints one line per input (and
// a total for several) and returns the exit code: 1 if a file could not
// be read.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		c, err := count(stdin)
		if err != nil {
			fmt.Fprintf(stderr, "wordcount: stdin: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d %d %d\n", c.lines, c.words, c.bytes)
		return 0
	}

	code := 0
	var total counts
	for _, name := range args {
		c, err := countFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "wordcount: %v\n", err)
			code = 1
			continue
		}
		total.add(c)
		fmt.Fprintf(stdout, "%d %d %d %s\n", c.lines, c.words, c.bytes, name)
	}
	if len(args) > 1 {
		fmt.Fprintf(stdout, "%d %d %d total\n", total.lines, total.words,
			total.bytes)
	}
	return code
}

func countFile(name string) (counts, error) {
	f, err := os.Open(name)
	if err != nil {
		return counts{}, err
	}
	defer f.Close()
	return count(f)
}
