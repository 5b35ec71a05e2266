package cmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestAskYesNo(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, " yes \n": true, "n\n": false, "\n": false, "sure\n": false} {
		var errOut bytes.Buffer
		got, err := askYesNo(context.Background(), bufio.NewReader(strings.NewReader(in)), &errOut, "Go?")
		if err != nil || got != want {
			t.Errorf("answer %q: %v, %v; want %v", in, got, err, want)
		}
		if errOut.String() != "Go? [y/N] " {
			t.Errorf("prompt %q", errOut.String())
		}
	}
	if _, err := askYesNo(context.Background(), bufio.NewReader(strings.NewReader("")), io.Discard, "Go?"); err == nil {
		t.Error("no answer (EOF) was taken for one")
	}
}

// Ctrl-C at a prompt ends the wait at once, even though nobody types.
func TestAskYesNoInterrupted(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		ok, err := askYesNo(ctx, bufio.NewReader(r), io.Discard, "Kill?")
		if ok {
			err = errors.New("answered yes")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errInterrupted) {
			t.Errorf("interrupted prompt: %v, want %v", err, errInterrupted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ctrl-C did not end the prompt")
	}
}
