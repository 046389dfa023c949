package netprefix

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"192.0.2.1", "192.0.2.1/32"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::1/32", "2001:db8::/32"},
		{"::ffff:192.0.2.1", "::ffff:192.0.2.1/128"},
		{"fe80::1%eth0", "fe80::1/128"},
		{"fe80::1%eth0/64", ""},
		{"10.0.0.0/99", ""},
		{"10.0.0.0/", ""},
		{"/8", ""},
		{" 192.0.2.1", ""},
		{"example.com", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := Parse(tc.in)
			got := p.String()
			if err != nil {
				got = ""
			}
			if got != tc.want {
				t.Errorf("Parse(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
