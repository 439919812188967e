//! Integration tests of breakglass-tlog: the public RFC 6962 / RFC 9162
//! transparency-dev test vectors.

mod vectors;
