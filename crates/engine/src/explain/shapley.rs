//! The arithmetic of Shapley values, apart from any model: which coalitions to evaluate and how
//! their values become attributions. A coalition is a mask over the `m` features that vary
//! (1: the feature keeps the explained row's value, 0: it takes the background's).

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;

/// Every coalition of `m` features, as masks in the order of the integers 0..2^m (bit i of
/// the integer is feature i).
pub fn all_coalitions(m: usize) -> Vec<u8> {
    let n = 1usize << m;
    let mut masks = vec![0u8; n * m];
    for s in 0..n {
        for i in 0..m {
            masks[s * m + i] = ((s >> i) & 1) as u8;
        }
    }
    masks
}

/// Exact Shapley values from the value of every coalition (`values[s]` for the coalition whose
/// bits are `s`, as [`all_coalitions`] orders them): φᵢ = Σ_{S ∌ i} |S|!(m−|S|−1)!/m! ·
/// (v(S ∪ {i}) − v(S)).
pub fn exact(m: usize, values: &[f64]) -> Vec<f64> {
    debug_assert_eq!(values.len(), 1 << m);
    // The weight of a coalition of size k, 1 / (m · C(m−1, k)).
    let mut weight = vec![0.0; m];
    let mut binom = 1.0f64;
    for (k, w) in weight.iter_mut().enumerate() {
        *w = 1.0 / (m as f64 * binom);
        binom = binom * (m - 1 - k) as f64 / (k + 1) as f64;
    }
    let mut phi = vec![0.0; m];
    for s in 0..values.len() {
        let size = s.count_ones() as usize;
        for (i, p) in phi.iter_mut().enumerate() {
            if s & (1 << i) == 0 {
                *p += weight[size] * (values[s | (1 << i)] - values[s]);
            }
        }
    }
    phi
}

/// The coalitions KernelSHAP evaluates and their kernel weights.
pub struct KernelSamples {
    /// `weights.len()` masks of `m` bytes each.
    pub masks: Vec<u8>,
    pub weights: Vec<f64>,
}

/// The samples KernelSHAP evaluates with `nsamples` model evaluations, by the scheme of Lundberg
/// and Lee's reference implementation (the `shap` package's KernelExplainer): coalition sizes
/// weighted by the Shapley kernel (m−1)/(k(m−k)); every size whose coalitions the budget can
/// enumerate in full is enumerated with exact weights, smallest and largest first (a
/// coalition and its complement together); the rest of the budget draws random coalitions of
/// the remaining sizes, each paired with its complement, repeats adding to the weight of the
/// first draw. The empty and the full coalition are not samples: their values (the
/// background's expectation and the row's own output) enter the solution as its constraint.
pub fn kernel_samples(m: usize, nsamples: usize, rng: &mut impl Rng) -> KernelSamples {
    let max = if m <= 30 {
        (1usize << m) - 2
    } else {
        usize::MAX
    };
    let nsamples = nsamples.min(max);
    let mut out = KernelSamples {
        masks: Vec::with_capacity(nsamples * m),
        weights: Vec::with_capacity(nsamples),
    };
    // ceil((m−1)/2) sizes, of which floor((m−1)/2) have a distinct complement size.
    let num_sizes = (m - 1).div_ceil(2);
    let num_paired = (m - 1) / 2;
    let mut weight_vector: Vec<f64> = (1..=num_sizes)
        .map(|k| (m as f64 - 1.0) / (k as f64 * (m - k) as f64))
        .collect();
    for w in weight_vector.iter_mut().take(num_paired) {
        *w *= 2.0;
    }
    let total: f64 = weight_vector.iter().sum();
    weight_vector.iter_mut().for_each(|w| *w /= total);

    let mut full_sizes = 0;
    let mut left = nsamples as f64;
    let mut remaining = weight_vector.clone();
    let mut mask = vec![0u8; m];
    for k in 1..=num_sizes {
        let mut subsets = binomial(m, k);
        if k <= num_paired {
            subsets *= 2.0;
        }
        if left * remaining[k - 1] / subsets < 1.0 - 1e-8 {
            break;
        }
        full_sizes += 1;
        left -= subsets;
        if remaining[k - 1] < 1.0 {
            let scale = 1.0 - remaining[k - 1];
            remaining.iter_mut().for_each(|w| *w /= scale);
        }
        let mut w = weight_vector[k - 1] / binomial(m, k);
        if k <= num_paired {
            w /= 2.0;
        }
        for_each_combination(m, k, |chosen| {
            mask.fill(0);
            chosen.iter().for_each(|&i| mask[i] = 1);
            out.masks.extend_from_slice(&mask);
            out.weights.push(w);
            if k <= num_paired {
                mask.iter_mut().for_each(|b| *b ^= 1);
                out.masks.extend_from_slice(&mask);
                out.weights.push(w);
            }
        });
    }

    let fixed = out.weights.len();
    let mut samples_left = nsamples.saturating_sub(fixed);
    if full_sizes != num_sizes && samples_left > 0 {
        let mut rest: Vec<f64> = weight_vector.clone();
        for w in rest.iter_mut().take(num_paired) {
            *w /= 2.0;
        }
        let rest = &rest[full_sizes..];
        let rest_total: f64 = rest.iter().sum();
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut order: Vec<usize> = (0..m).collect();
        let mut draws = 4 * samples_left;
        while samples_left > 0 && draws > 0 {
            draws -= 1;
            // A size, by the remaining weights.
            let mut pick = rng.gen::<f64>() * rest_total;
            let mut idx = rest.len() - 1;
            for (i, w) in rest.iter().enumerate() {
                if pick < *w {
                    idx = i;
                    break;
                }
                pick -= w;
            }
            let k = idx + full_sizes + 1;
            order.shuffle(rng);
            mask.fill(0);
            order[..k].iter().for_each(|&i| mask[i] = 1);
            let first = match seen.get(&mask) {
                Some(&at) => {
                    out.weights[at] += 1.0;
                    Some(at)
                }
                None => {
                    seen.insert(mask.clone(), out.weights.len());
                    out.masks.extend_from_slice(&mask);
                    out.weights.push(1.0);
                    samples_left -= 1;
                    None
                }
            };
            if samples_left > 0 && k <= num_paired {
                match first {
                    // The complement was added right after the first draw of this mask.
                    Some(at) => out.weights[at + 1] += 1.0,
                    None => {
                        mask.iter_mut().for_each(|b| *b ^= 1);
                        out.masks.extend_from_slice(&mask);
                        out.weights.push(1.0);
                        samples_left -= 1;
                    }
                }
            }
        }
        // The random samples share the weight the enumerated sizes left.
        let weight_left: f64 = weight_vector[full_sizes..].iter().sum();
        let drawn: f64 = out.weights[fixed..].iter().sum();
        if drawn > 0.0 {
            out.weights[fixed..]
                .iter_mut()
                .for_each(|w| *w *= weight_left / drawn);
        }
    }
    out
}

/// C(n, k) as f64.
fn binomial(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Calls `f` with every k-subset of 0..n, in lexicographic order.
fn for_each_combination(n: usize, k: usize, mut f: impl FnMut(&[usize])) {
    if k > n {
        return;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        f(&idx);
        // The rightmost index that can still move right.
        let mut i = k;
        while i > 0 && idx[i - 1] == i - 1 + n - k {
            i -= 1;
        }
        if i == 0 {
            return;
        }
        idx[i - 1] += 1;
        for j in i..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// KernelSHAP's solution: the weighted least-squares fit of the sampled coalitions' values with
/// the efficiency constraint Σφ = f(x) − E[f(background)] built in (the last feature's value
/// is eliminated), so that additivity holds exactly. `values[i]` is sample i's value,
/// `fnull` the background's expectation and `fx` the explained row's output.
pub fn kernel_solve(s: &KernelSamples, m: usize, values: &[f64], fx: f64, fnull: f64) -> Vec<f64> {
    let delta = fx - fnull;
    let p = m - 1;
    // Normal equations (Xᵀ W X) β = Xᵀ W y, with X[:, j] = z_j − z_last.
    let mut a = vec![0.0f64; p * p];
    let mut b = vec![0.0f64; p];
    let mut x = vec![0.0f64; p];
    for (i, w) in s.weights.iter().enumerate() {
        let z = &s.masks[i * m..(i + 1) * m];
        let last = z[m - 1] as f64;
        let y = values[i] - fnull - last * delta;
        for j in 0..p {
            x[j] = z[j] as f64 - last;
        }
        for j in 0..p {
            if x[j] == 0.0 {
                continue;
            }
            let wx = w * x[j];
            b[j] += wx * y;
            for k in 0..p {
                a[j * p + k] += wx * x[k];
            }
        }
    }
    let beta = solve_symmetric(&mut a, &mut b, p);
    let mut phi = beta;
    let sum: f64 = phi.iter().sum();
    phi.push(delta - sum);
    phi
}

/// Solves `a x = b` (a: p×p, row-major) by Gaussian elimination with partial pivoting. A
/// singular system (too few samples to tell some features apart) gets a tiny ridge, which
/// picks the smallest solution as a least-squares solver would.
fn solve_symmetric(a: &mut [f64], b: &mut [f64], p: usize) -> Vec<f64> {
    let scale = (0..p).map(|i| a[i * p + i].abs()).fold(0.0, f64::max);
    if let Some(x) = gauss(a.to_vec(), b.to_vec(), p, scale) {
        return x;
    }
    let ridge = scale.max(1e-300) * 1e-10;
    for i in 0..p {
        a[i * p + i] += ridge;
    }
    gauss(a.to_vec(), b.to_vec(), p, 0.0).unwrap_or_else(|| vec![0.0; p])
}

fn gauss(mut a: Vec<f64>, mut b: Vec<f64>, p: usize, scale: f64) -> Option<Vec<f64>> {
    let tiny = scale * 1e-12;
    for col in 0..p {
        let pivot = (col..p).max_by(|&i, &j| {
            a[i * p + col]
                .abs()
                .partial_cmp(&a[j * p + col].abs())
                .unwrap_or(std::cmp::Ordering::Equal)
        })?;
        if a[pivot * p + col].abs() <= tiny || !a[pivot * p + col].is_finite() {
            return None;
        }
        if pivot != col {
            for k in 0..p {
                a.swap(pivot * p + k, col * p + k);
            }
            b.swap(pivot, col);
        }
        let d = a[col * p + col];
        for row in col + 1..p {
            let f = a[row * p + col] / d;
            if f == 0.0 {
                continue;
            }
            for k in col..p {
                a[row * p + k] -= f * a[col * p + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; p];
    for row in (0..p).rev() {
        let mut acc = b[row];
        for k in row + 1..p {
            acc -= a[row * p + k] * x[k];
        }
        x[row] = acc / a[row * p + row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A game with known Shapley values: v(S) = Σ_{i∈S} c_i + c_int·[0∈S ∧ 1∈S] splits the
    /// interaction equally between features 0 and 1.
    fn game(s: &[u8]) -> f64 {
        let mut v: f64 = s
            .iter()
            .enumerate()
            .map(|(i, &b)| b as f64 * (i + 1) as f64)
            .sum();
        if s[0] == 1 && s[1] == 1 {
            v += 3.0;
        }
        v
    }

    #[test]
    fn exact_values_of_a_known_game() {
        let m = 5;
        let masks = all_coalitions(m);
        let values: Vec<f64> = masks.chunks(m).map(game).collect();
        let phi = exact(m, &values);
        let want = [1.0 + 1.5, 2.0 + 1.5, 3.0, 4.0, 5.0];
        for (p, w) in phi.iter().zip(want) {
            assert!((p - w).abs() < 1e-12, "{phi:?}");
        }
    }

    #[test]
    fn kernel_shap_enumerating_everything_is_exact() {
        let m = 6;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let s = kernel_samples(m, 10_000, &mut rng);
        assert_eq!(s.weights.len(), (1 << m) - 2);
        let values: Vec<f64> = s.masks.chunks(m).map(game).collect();
        let full = game(&[1; 6]);
        let phi = kernel_solve(&s, m, &values, full, 0.0);
        let want = [2.5, 3.5, 3.0, 4.0, 5.0, 6.0];
        for (p, w) in phi.iter().zip(want) {
            assert!((p - w).abs() < 1e-9, "{phi:?}");
        }
    }

    #[test]
    fn kernel_shap_sampling_is_additive_and_close() {
        let m = 12;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let s = kernel_samples(m, 600, &mut rng);
        assert_eq!(s.weights.len(), 600);
        let total: f64 = s.weights.iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
        let values: Vec<f64> = s.masks.chunks(m).map(game).collect();
        let full = game(&[1; 12]);
        let phi = kernel_solve(&s, m, &values, full, 0.0);
        assert!((phi.iter().sum::<f64>() - full).abs() < 1e-9);
        // The game is additive but for one pairwise term: the fit is close everywhere.
        assert!(
            (phi[0] - 2.5).abs() < 0.1 && (phi[11] - 12.0).abs() < 0.1,
            "{phi:?}"
        );
    }

    #[test]
    fn combinations_are_all_there() {
        let mut n = 0;
        for_each_combination(6, 3, |c| {
            assert!(c.windows(2).all(|w| w[0] < w[1]));
            n += 1;
        });
        assert_eq!(n, 20);
        let mut n = 0;
        for_each_combination(4, 4, |_| n += 1);
        assert_eq!(n, 1);
    }
}
