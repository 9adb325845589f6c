//! Who sends what to whom: the workspaces (one business number each), their
//! customers' phones, the registry that routes them, and a small seeded PRNG
//! so that a run can be repeated.

/// The workspaces and senders a run uses.
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
    pub workspaces: usize,
    pub senders: usize,
}

impl Layout {
    pub fn workspace_id(&self, w: usize) -> String {
        format!("{}_ws{w:03}", self.prefix)
    }

    /// The business number of workspace `w` (15 digits, like Meta's ids).
    pub fn phone_number_id(&self, w: usize) -> String {
        format!("7{:014}", w + 1)
    }

    /// Customer phone `s` of a workspace (digits only, a Brazilian mobile).
    pub fn sender_phone(&self, s: usize) -> String {
        format!("5511{:09}", s)
    }

    /// The ingress registry routing every workspace's number.
    pub fn registry_toml(&self) -> String {
        let mut out = String::from("# Written by loadgen --write-registry.\n");
        for w in 0..self.workspaces {
            out.push_str(&format!(
                "\n[[workspace]]\nid = \"{}\"\nphone_number_ids = [\"{}\"]\n",
                self.workspace_id(w),
                self.phone_number_id(w)
            ));
        }
        out
    }
}

/// SplitMix64: small, fast, reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}
