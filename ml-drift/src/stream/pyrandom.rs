//! Python's `random.Random` (MT19937 seeded from an integer, `getrandbits`, `_randbelow` and
//! `sample`), reimplemented so a seeded KSWIN draws the same samples as river's, which uses it.
//! Only the parts KSWIN needs; sequences equal CPython's (3.2 and later) bit for bit.

const N: usize = 624;
const M: usize = 397;

/// A Mersenne Twister in CPython's `random.Random` arrangement.
#[derive(Clone, Debug)]
pub(crate) struct PyRandom {
    state: Box<[u32; N]>,
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed (CPython's `init_by_array` over the
    /// seed's 32-bit words, least significant first; seed 0 is the one word 0).
    pub(crate) fn new(seed: u64) -> Self {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        let mut r = PyRandom {
            state: Box::new([0; N]),
            index: N,
        };
        r.init_genrand(19_650_218);
        let mt = &mut r.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.state[0] = s;
        for i in 1..N {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        if self.index >= N {
            let mt = &mut self.state;
            for k in 0..N {
                let y = (mt[k] & UPPER) | (mt[(k + 1) % N] & LOWER);
                let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
                mt[k] = mt[(k + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `1 ≤ k ≤ 32`.
    fn getrandbits(&mut self, k: u32) -> u32 {
        self.next_u32() >> (32 - k)
    }

    /// `_randbelow(n)`: rejection sampling on `n.bit_length()` bits (`n ≥ 1`, below 2³²).
    fn randbelow(&mut self, n: u32) -> u32 {
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `sample(range(n), k)`: the pool method for small populations, set rejection otherwise,
    /// chosen by CPython's rule.
    pub(crate) fn sample_range(&mut self, n: usize, k: usize) -> Vec<usize> {
        debug_assert!(k <= n && n < u32::MAX as usize);
        let mut setsize = 21usize;
        if k > 5 {
            setsize += 4usize.pow(log4_ceil(k * 3));
        }
        let mut result = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow((n - i) as u32) as usize;
                result.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n as u32) as usize;
                while selected.contains(&j) {
                    j = self.randbelow(n as u32) as usize;
                }
                selected.insert(j);
                result.push(j);
            }
        }
        result
    }
}

/// `ceil(log(x, 4))` as CPython computes it (`log(x) / log(4)` in floating point).
fn log4_ceil(x: usize) -> u32 {
    ((x as f64).ln() / 4f64.ln()).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::PyRandom;

    #[test]
    fn equals_cpython() {
        // python3 -c "import random; r = random.Random(42); print([r.getrandbits(32) for _ in range(3)])"
        let mut r = PyRandom::new(42);
        assert_eq!([r.next_u32(), r.next_u32(), r.next_u32()], PY_42);
        // python3 -c "import random; print(random.Random(7).sample(range(70), 30))"
        assert_eq!(PyRandom::new(7).sample_range(70, 30), PY_SAMPLE_7.to_vec());
        // python3 -c "import random; print(random.Random(2**40 + 5).sample(range(1000), 4))"
        assert_eq!(
            PyRandom::new((1 << 40) + 5).sample_range(1000, 4),
            PY_SAMPLE_BIG.to_vec()
        );
    }

    const PY_42: [u32; 3] = [2746317213, 478163327, 107420369];
    const PY_SAMPLE_7: [usize; 30] = [
        41, 19, 50, 6, 9, 12, 46, 37, 3, 58, 32, 13, 2, 5, 27, 26, 4, 15, 56, 35, 55, 61, 36, 7, 14, 40, 44,
        62, 48, 47,
    ];
    const PY_SAMPLE_BIG: [usize; 4] = [516, 529, 275, 679];
}
