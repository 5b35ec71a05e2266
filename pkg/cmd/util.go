package cmd

import (
	"strconv"
	"strings"
)

func joinComma(s []string) string { return strings.Join(s, ",") }

func itoa(n int) string { return strconv.Itoa(n) }
