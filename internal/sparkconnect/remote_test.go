package sparkconnect

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRemote(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Remote
	}{
		{"sc://localhost", Remote{Host: "localhost", Port: 15002}},
		{"sc://127.0.0.1:1234", Remote{Host: "127.0.0.1", Port: 1234}},
		{"sc://[::1]:1234/", Remote{Host: "::1", Port: 1234}},
		{"sc://h:1/;use_ssl=true;user_id=ann", Remote{Host: "h", Port: 1, UseSSL: true, UserID: "ann"}},
		{"sc://h/;token=abc", Remote{Host: "h", Port: 15002, Token: "abc", UseSSL: true}},
		{"sc://h/;user_agent=x;session_id=00112233-4455-6677-8899-aabbccddeeff",
			Remote{Host: "h", Port: 15002, UserAgent: "x", SessionID: "00112233-4455-6677-8899-aabbccddeeff"}},
		{"sc://h:443/;token=t;x-databricks-cluster-id=0123-456;X-Other=a=b",
			Remote{Host: "h", Port: 443, Token: "t", UseSSL: true, Headers: map[string]string{"x-databricks-cluster-id": "0123-456", "x-other": "a=b"}}},
	} {
		got, err := ParseRemote(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	for in, msg := range map[string]string{
		"":                                   "must start with sc://",
		"http://h:1":                         "must start with sc://",
		"sc://":                              "has no host",
		"sc://:15002":                        "has no host",
		"sc://h:x":                           "is not a number",
		"sc://h:0":                           "is not a number",
		"sc://h/db":                          "has a path",
		"sc://u@h":                           "user, query or fragment",
		"sc://h/;use_ssl=yes":                "is not true or false",
		"sc://h/;tokn=abc":                   `unknown setting "tokn"`,
		"sc://h/;user_id=a;user_id=b":        "given twice",
		"sc://h/;token":                      "has no value",
		"sc://h/;token=secret;use_ssl=false": "token needs TLS",
		"sc://h/;session_id=42":              "is not a UUID",
	} {
		_, err := ParseRemote(in)
		require.ErrorContains(t, err, msg, in)
		require.NotContains(t, err.Error(), "secret", in)
	}
}

func TestDialBadRemote(t *testing.T) {
	_, err := Dial(context.Background(), "sc://h/;bogus=1", Options{})
	require.ErrorContains(t, err, `unknown setting "bogus"`)
}

func TestCleanMessage(t *testing.T) {
	msg := "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with name `nope` cannot be resolved. Did you mean one of the following? [`id`]. SQLSTATE: 42703;\n'Project ['nope]\n+- Range (0, 3, step=1, splits=None)\n"
	require.Equal(t, "A column, variable, or function parameter with name `nope` cannot be resolved. Did you mean one of the following? [`id`].",
		cleanMessage(msg, "UNRESOLVED_COLUMN.WITH_SUGGESTION", "42703"))
	require.Equal(t, "Did you mean [`id`]. line 1 pos 7",
		cleanMessage("[UNRESOLVED_COLUMN.WITH_SUGGESTION] Did you mean [`id`]. SQLSTATE: 42703; line 1 pos 7", "UNRESOLVED_COLUMN.WITH_SUGGESTION", "42703"))
	require.Equal(t, "plain", cleanMessage("[X_Y] plain SQLSTATE: 22018", "", ""))
	require.Equal(t, "[not a class] stays", cleanMessage("[not a class] stays", "", ""))
	require.Equal(t, "Syntax error at or near 'SELEC'. (line 1, pos 0)",
		cleanMessage("\n[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'. SQLSTATE: 42601 (line 1, pos 0)\n\n== SQL ==\nSELEC 1\n^^^\n", "PARSE_SYNTAX_ERROR", "42601"))
}
