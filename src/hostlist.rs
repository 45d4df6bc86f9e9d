//! Host names folded for people: `cp1, cp2, cp3, worker01 ... worker17` reads as
//! `cp[1-3], worker[01-17]`, the way ClusterShell's node sets print them (`clush -b`), and
//! hosts whose results are identical are shown once under their folded names.

/// Fold `names` into ranges: names that differ only in a trailing number of the same width
/// (`w1`/`w2`, `node-01`/`node-02`) share one `prefix[ranges]` item. Items keep the order in
/// which their first name came; a name alone in its item is printed as it is.
pub fn fold<S: AsRef<str>>(names: &[S]) -> String {
    let split: Vec<(&str, Option<(&str, &str)>)> =
        names.iter().map(|n| (n.as_ref(), split_number(n.as_ref()))).collect();
    // Zero-padded numbers (`w01`) fix their prefix's width; an unpadded number of that width
    // (`w10`) belongs with them, any other (`w1`) with the unpadded ones.
    let padded: Vec<(&str, usize)> = split
        .iter()
        .filter_map(|(_, s)| s.filter(|(_, n)| n.len() > 1 && n.starts_with('0')).map(|(p, n)| (p, n.len())))
        .collect();
    let mut keys: Vec<(String, usize)> = Vec::new();
    let mut numbers: Vec<Vec<u64>> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    for (name, parts) in split {
        let Some((prefix, number, value)) = parts.and_then(|(p, n)| n.parse::<u64>().ok().map(|v| (p, n, v))) else {
            items.push(Item::Plain(name.to_string()));
            continue;
        };
        let width = if padded.contains(&(prefix, number.len())) { number.len() } else { 0 };
        let key = (prefix.to_string(), width);
        match keys.iter().position(|k| *k == key) {
            Some(i) => numbers[i].push(value),
            None => {
                keys.push(key);
                numbers.push(vec![value]);
                items.push(Item::Numbered(keys.len() - 1));
            }
        }
    }
    let folded: Vec<String> = items
        .into_iter()
        .map(|item| match item {
            Item::Plain(name) => name,
            Item::Numbered(i) => {
                let (prefix, width) = &keys[i];
                let ns = &mut numbers[i];
                ns.sort_unstable();
                ns.dedup();
                match ns.as_slice() {
                    [only] => format!("{prefix}{only:0width$}"),
                    all => format!("{prefix}[{}]", ranges(all, *width)),
                }
            }
        })
        .collect();
    folded.join(", ")
}

enum Item {
    Plain(String),
    Numbered(usize),
}

/// `worker017` -> ("worker", "017"). A name that is only digits has no prefix to share, and
/// a number too long for u64 is no number to count with.
fn split_number(name: &str) -> Option<(&str, &str)> {
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits == name.len() || digits > 18 {
        return None;
    }
    Some(name.split_at(name.len() - digits))
}

/// `[1, 2, 3, 5, 7, 8]` -> `1-3,5,7-8`, each number padded to `width`.
fn ranges(sorted: &[u64], width: usize) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end { format!("{start:0width$}") } else { format!("{start:0width$}-{end:0width$}") });
        i += 1;
    }
    parts.join(",")
}

/// Group `items` whose `key` is equal, in the order each group's first item came.
pub fn group_by_identical<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<Vec<T>> {
    let mut groups: Vec<(K, Vec<T>)> = Vec::new();
    for item in items {
        let k = key(&item);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(item),
            None => groups.push((k, vec![item])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_numbers_fold_into_ranges() {
        assert_eq!(fold(&["cp1", "cp2", "cp3"]), "cp[1-3]");
        assert_eq!(fold(&["w1", "w2", "w3", "w5", "w7", "w8"]), "w[1-3,5,7-8]");
        let workers: Vec<String> = (1..=17).map(|i| format!("worker{i}")).collect();
        let mut names = vec!["cp1".to_string(), "cp2".to_string()];
        names.extend(workers);
        assert_eq!(fold(&names), "cp[1-2], worker[1-17]");
    }

    #[test]
    fn a_name_alone_and_names_without_numbers_stay_as_they_are() {
        assert_eq!(fold(&["cp1"]), "cp1");
        assert_eq!(fold(&["master", "node-1", "node-2", "bastion"]), "master, node-[1-2], bastion");
        assert_eq!(fold(&["10", "11"]), "10, 11");
        assert_eq!(fold::<&str>(&[]), "");
    }

    #[test]
    fn padding_is_kept_and_padded_names_do_not_fold_with_unpadded_ones() {
        assert_eq!(fold(&["worker01", "worker02", "worker10"]), "worker[01-02,10]");
        assert_eq!(fold(&["w01", "w1", "w02"]), "w[01-02], w1");
        assert_eq!(fold(&["w9", "w10", "w11"]), "w[9-11]");
    }

    #[test]
    fn the_order_is_the_first_appearance_and_numbers_are_sorted_within() {
        assert_eq!(fold(&["w3", "cp1", "w1", "w2", "cp2"]), "w[1-3], cp[1-2]");
        assert_eq!(fold(&["a.example.com", "k8s-cp-2", "k8s-cp-1"]), "a.example.com, k8s-cp-[1-2]");
    }

    #[test]
    fn identical_items_group_in_first_appearance_order() {
        let groups = group_by_identical(vec![("w1", "ok"), ("cp1", "bad"), ("w2", "ok")], |(_, out)| *out);
        assert_eq!(groups, vec![vec![("w1", "ok"), ("w2", "ok")], vec![("cp1", "bad")]]);
    }
}
