package verify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/switchyard/switchyard/receiver/inbound"
)

// IPAllow admits requests from listed networks only. The client is the
// TCP peer, unless the peer is a trusted proxy: then X-Forwarded-For is
// read from the right, skipping trusted proxies, and the first address
// that is not one is the client. Entries left of it were written by the
// client itself and are never believed.
type IPAllow struct {
	allow, trusted []netip.Prefix
}

// NewIPAllow parses CIDRs (or bare addresses) for both lists. Errors name
// the list ("ip_allow[2]") and the entry.
func NewIPAllow(allow, trustedProxies []string) (*IPAllow, error) {
	a := &IPAllow{}
	var err error
	if a.allow, err = prefixes("ip_allow", allow); err != nil {
		return nil, err
	}
	if a.trusted, err = prefixes("trusted_proxies", trustedProxies); err != nil {
		return nil, err
	}
	if len(a.allow) == 0 {
		return nil, configErr("ip_allow", "empty: list the networks allowed to post, such as [192.0.2.0/24]")
	}
	return a, nil
}

func prefixes(field string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, configErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a CIDR (192.0.2.0/24, 2001:db8::/32) or an address", s)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		if p.Masked() != p {
			return nil, configErr(fmt.Sprintf("%s[%d]", field, i), "%q has host bits set; did you mean %s?", s, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

func contains(list []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client returns the client address of r, as described on IPAllow.
func (a *IPAllow) Client(r *inbound.Request) (netip.Addr, error) {
	addr := r.RemoteIP.Unmap()
	if !contains(a.trusted, addr) {
		return addr, nil
	}
	hops := strings.Split(strings.Join(r.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		next, err := netip.ParseAddr(h)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%w: X-Forwarded-For entry %q is not an address", ErrForbidden, h)
		}
		addr = next.Unmap()
		if !contains(a.trusted, addr) {
			break
		}
	}
	return addr, nil
}

// Verify implements Verifier.
func (a *IPAllow) Verify(r *inbound.Request) error {
	addr, err := a.Client(r)
	if err != nil {
		return err
	}
	if !addr.IsValid() || !contains(a.allow, addr) {
		return fmt.Errorf("%w: %s", ErrForbidden, addr)
	}
	return nil
}
