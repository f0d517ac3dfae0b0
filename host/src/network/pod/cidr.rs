//! CIDR notation (`10.42.0.0/24`, `10.42.0.7/24`, `fd00::/64`): parsing and containment,
//! for the scope checks of the network host calls.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with a prefix length. The address keeps its host bits (`10.42.0.7/24` is an
/// interface address); [`Cidr::network`] clears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn bits(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    fn as_u128(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn mask(&self) -> u128 {
        let bits = u32::from(self.bits());
        let host = bits - u32::from(self.prefix);
        let all: u128 = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    /// The network (host bits cleared).
    pub fn network(&self) -> Cidr {
        let n = Self::as_u128(self.addr) & self.mask();
        let addr = match self.addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(n as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(n)),
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    /// Whether `addr` lies inside this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        if self.addr.is_ipv4() != addr.is_ipv4() {
            return false;
        }
        Self::as_u128(addr) & self.mask() == Self::as_u128(self.addr) & self.mask()
    }

    /// Whether the whole network `other` lies inside this one.
    pub fn contains_net(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR notation (address/prefix)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{s:?}: {prefix:?} is not a prefix length"))?;
        let c = Cidr { addr, prefix };
        if prefix > c.bits() {
            return Err(format!(
                "{s:?}: the prefix length is larger than {}",
                c.bits()
            ));
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_contains() {
        let c: Cidr = "10.42.0.0/24".parse().unwrap();
        assert!(c.contains("10.42.0.255".parse().unwrap()));
        assert!(!c.contains("10.42.1.0".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let cluster: Cidr = "10.42.0.0/16".parse().unwrap();
        assert!(cluster.contains_net(&c));
        assert!(!c.contains_net(&cluster));
        let host: Cidr = "10.42.0.7/24".parse().unwrap();
        assert_eq!(host.network().to_string(), "10.42.0.0/24");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6: Cidr = "fd00::5/64".parse().unwrap();
        assert!(v6.contains("fd00::1".parse().unwrap()));
        assert_eq!(v6.network().to_string(), "fd00::/64");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("x/8".parse::<Cidr>().is_err());
    }
}
