package sparkconnect

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// DefaultPort is Spark Connect's port when a remote names none.
const DefaultPort = 15002

// Remote is a parsed Spark Connect address.
type Remote struct {
	Host string
	Port int
	// Token is a bearer token sent with every call; it implies TLS.
	Token string
	// UseSSL dials with TLS (the system's roots).
	UseSSL bool
	// UserID identifies the user to the server ("quiver" when unset).
	UserID string
	// UserAgent is the client_type sent with every request.
	UserAgent string
	// SessionID, a UUID, joins an existing session; a new one otherwise.
	SessionID string
	// Headers are gRPC metadata sent with every call: the settings whose
	// keys start with x- (x-databricks-cluster-id, for one).
	Headers map[string]string
}

// Addr is host:port.
func (r Remote) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// ParseRemote parses a Spark Connect connection string:
//
//	sc://host[:port][/;key=value[;key=value...]]
//
// The port defaults to 15002. The accepted keys are token (a bearer token;
// it turns TLS on), use_ssl (true or false), user_id, user_agent and
// session_id (a UUID); a key starting with x- is a header sent with every
// call, as Spark's clients send unknown settings (a hosted service's
// cluster id, x-databricks-cluster-id). Any other key, a repeated key, a
// path, a query or a user part is an error, so that a misspelt setting is
// not silently ignored. The token is never quoted in errors.
func ParseRemote(s string) (Remote, error) {
	bad := func(format string, args ...any) (Remote, error) {
		return Remote{}, fmt.Errorf("spark connect remote %q: %s", redact(s), fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(s, "sc://")
	if !ok {
		return bad("must start with sc://, as in sc://host:15002")
	}
	hostport, params, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(hostport, "@?#") {
		return bad("has a user, query or fragment part; settings go after /; as in sc://host:15002/;token=...")
	}
	r := Remote{Port: DefaultPort}
	if hostport == "" {
		return bad("has no host")
	}
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return bad("port %q is not a number from 1 to 65535", p)
		}
		r.Host, r.Port = h, port
	} else if strings.Contains(hostport, ":") && !strings.HasPrefix(hostport, "[") {
		return bad("host:port %q does not parse: %v", hostport, err)
	} else {
		r.Host = strings.Trim(hostport, "[]")
	}
	if r.Host == "" {
		return bad("has no host")
	}
	if params == "" {
		return r, nil
	}
	params, ok = strings.CutPrefix(params, ";")
	if !ok {
		return bad("has a path %q; Spark Connect takes none, settings go after /;", "/"+params)
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(params, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return bad("setting %q has no value (key=value)", k)
		}
		if seen[k] {
			return bad("setting %s given twice", k)
		}
		seen[k] = true
		switch k {
		case "token":
			if v == "" {
				return bad("token is empty")
			}
			r.Token = v
		case "use_ssl":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("use_ssl=%q is not true or false", v)
			}
			r.UseSSL = b
		case "user_id":
			r.UserID = v
		case "user_agent":
			r.UserAgent = v
		case "session_id":
			if _, err := uuid.Parse(v); err != nil {
				return bad("session_id=%q is not a UUID", v)
			}
			r.SessionID = v
		default:
			if strings.HasPrefix(strings.ToLower(k), "x-") {
				if r.Headers == nil {
					r.Headers = map[string]string{}
				}
				r.Headers[strings.ToLower(k)] = v
				continue
			}
			return bad("unknown setting %q (accepted: token, use_ssl, user_id, user_agent, session_id, and headers x-...)", k)
		}
	}
	if r.Token != "" {
		if seen["use_ssl"] && !r.UseSSL {
			return bad("token needs TLS: drop use_ssl=false")
		}
		r.UseSSL = true
	}
	return r, nil
}

// redact hides a token's value.
func redact(s string) string {
	i := strings.Index(s, "token=")
	if i < 0 {
		return s
	}
	end := strings.IndexByte(s[i:], ';')
	if end < 0 {
		return s[:i] + "token=***"
	}
	return s[:i] + "token=***" + s[i+end:]
}
