package dnsdiag

import (
	"strings"
)

// ServerBlock is one server block of a Corefile: the zones it serves and
// the targets of its `forward FROM TO...` lines.
type ServerBlock struct {
	Zones []string
	// Forwards are the forward plugin's lines: the zone it forwards
	// (FROM) and the targets (IPs, IP:port, dns://IP, tls://IP or
	// /etc/resolv.conf).
	Forwards []Forward
	// Plugins are the names of the block's top-level directives, in order.
	Plugins []string
}

// Forward is one `forward FROM TO...` directive.
type Forward struct {
	From string
	To   []string
}

// ParseCorefile reads the server blocks of a Corefile, far enough to know
// where CoreDNS forwards: it understands comments, quoted-free tokens,
// nested blocks and `import` lines (left as plugins). It is no complete
// Caddyfile parser, and needs none: an unknown shape yields fewer blocks,
// never an error.
func ParseCorefile(text string) []ServerBlock {
	var blocks []ServerBlock
	var cur *ServerBlock
	depth := 0
	var pendingZones []string
	for _, raw := range strings.Split(text, "\n") {
		line := raw
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		opens := strings.Count(line, "{")
		closes := strings.Count(line, "}")
		words := []string{}
		for _, f := range fields {
			if f != "{" && f != "}" {
				words = append(words, strings.Trim(f, "{}"))
			}
		}
		switch {
		case depth == 0:
			// Zones, possibly over several lines until "{".
			for _, w := range words {
				if w != "" {
					pendingZones = append(pendingZones, strings.TrimSuffix(w, ","))
				}
			}
			if opens > 0 {
				blocks = append(blocks, ServerBlock{Zones: pendingZones})
				cur = &blocks[len(blocks)-1]
				pendingZones = nil
			}
		case depth == 1 && cur != nil && len(words) > 0:
			cur.Plugins = append(cur.Plugins, words[0])
			if words[0] == "forward" && len(words) >= 3 {
				cur.Forwards = append(cur.Forwards, Forward{From: words[1], To: append([]string(nil), words[2:]...)})
			}
		}
		depth += opens - closes
		if depth < 0 {
			depth = 0
		}
		if depth == 0 {
			cur = nil
		}
	}
	return blocks
}

// RootForward is where the Corefile sends names outside the cluster: the
// targets of the forward line of the block serving the root zone ("." or
// ".:53"), nil when there is none.
func RootForward(blocks []ServerBlock) []string {
	for _, b := range blocks {
		for _, z := range b.Zones {
			if zoneName(z) != "." {
				continue
			}
			for _, f := range b.Forwards {
				if f.From == "." {
					return f.To
				}
			}
		}
	}
	return nil
}

// zoneName strips a server block key of its scheme and port: dns://.:53 → ".".
func zoneName(key string) string {
	for _, scheme := range []string{"dns://", "tls://", "https://", "grpc://"} {
		key = strings.TrimPrefix(key, scheme)
	}
	if i := strings.LastIndex(key, ":"); i >= 0 {
		key = key[:i]
	}
	if key == "" {
		return "."
	}
	return key
}

// ForwardHost turns a forward target into an IP[:port] to query, or ""
// for /etc/resolv.conf-style file targets (the node's resolver).
func ForwardHost(target string) string {
	if strings.HasPrefix(target, "/") {
		return ""
	}
	for _, scheme := range []string{"dns://", "tls://", "https://"} {
		target = strings.TrimPrefix(target, scheme)
	}
	return target
}
