//! "Did you mean": the candidates closest to a word typed wrong. The config file offers them for its sections
//! and keys, the command line for a `--user` or `--mid-server` name the instance does not know.

/// The candidates `word` most likely meant, at most `max`: those the fewest edits away, and at most one edit
/// per three characters of `word` (and at least one), ignoring case and `-` for `_`; in the candidates' order.
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<&'a str> {
    let word = normalized(word);
    let limit = (word.chars().count() / 3).max(1);
    let near: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &normalized(c)), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    let fewest = near.iter().map(|(d, _)| *d).min();
    near.into_iter().filter(|(d, _)| Some(*d) == fewest).take(max).map(|(_, c)| c).collect()
}

fn normalized(word: &str) -> String {
    word.to_lowercase().replace('-', "_")
}

/// Edits (insert, delete, replace, swap two neighbours) from `a` to `b`, by characters: the optimal string
/// alignment distance, so that `emial` is one edit from `email`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between the first i characters of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_counted_by_characters_a_swap_as_one() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("emial", "email"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn the_closest_names_come_first_in_any_case_and_far_ones_not_at_all() {
        let users = ["midserver2", "midserver3", "mid.tokyo", "MidServer.Case"];
        assert_eq!(closest("midservr2", users, 3), ["midserver2"], "the nearest only");
        assert_eq!(closest("midserver", users, 3), ["midserver2", "midserver3"]);
        assert_eq!(closest("midserver", users, 1), ["midserver2"]);
        assert_eq!(closest("MIDSERVER-2", ["midserver_2"], 3), ["midserver_2"]);
        assert_eq!(closest("midserver.cse", users, 1), ["MidServer.Case"]);
        assert!(closest("nobody", users, 3).is_empty());
    }
}
