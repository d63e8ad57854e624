//! "Did you mean …?" suggestions for misspelled field names and values.

/// The candidate closest to `input`, if it is close enough to be a plausible typo.
///
/// Comparison ignores case and counts a swap of two neighbouring letters as one
/// edit, because `stepWeigth` for `stepWeight` is the typical mistake.
pub(crate) fn nearest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // Long inputs cannot be typos of our short names; skip the quadratic work.
    if input.len() > 64 {
        return None;
    }
    let input_lower = input.to_ascii_lowercase();
    let limit = (input.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|candidate| {
            let distance = edit_distance(&input_lower, &candidate.to_ascii_lowercase());
            (distance, *candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
///
/// Indexing cannot panic: `table` has `(a.len()+1) * (b.len()+1)` cells and every
/// index used is `at(i, j)` with `i <= a.len()`, `j <= b.len()`; `a[i - 1]`,
/// `a[i - 2]` (and the same for `b`) only run with `i >= 1` / `i >= 2`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        table[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        table[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[at(i - 1, j)] + 1)
                .min(table[at(i, j - 1)] + 1)
                .min(table[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[at(i - 2, j - 2)] + 1);
            }
            table[at(i, j)] = best;
        }
    }
    // The table has (a.len()+1)*(b.len()+1) cells, so the last index exists.
    table[at(a.len(), b.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["stepWeight", "stepWeights", "maxWeight", "interval"];
        assert_eq!(nearest("stepWeigth", &fields), Some("stepWeight"));
        assert_eq!(nearest("stepweight", &fields), Some("stepWeight"));
        assert_eq!(nearest("maxweigt", &fields), Some("maxWeight"));
        assert_eq!(nearest("banana", &fields), None);
        assert_eq!(nearest("", &fields), None);
    }
}
