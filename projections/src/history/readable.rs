//! hstry's readable ids: `adjective-noun`, chosen from a conversation's UUID, with `-N` (2..=999)
//! appended when the pair is taken (HSTRY_API.md 5.6). Deterministic: the same UUID and the same
//! taken set give the same id, so a rebuild from the log mints the same ids.

const ADJECTIVES: [&str; 64] = [
    "amber", "ancient", "azure", "bold", "brave", "breezy", "bright", "brisk", "calm", "clever",
    "cold", "cosmic", "crisp", "daring", "dusty", "eager", "early", "fancy", "fast", "fierce",
    "gentle", "glad", "golden", "grand", "green", "happy", "hidden", "humble", "icy", "jolly",
    "keen", "kind", "late", "lively", "lucky", "mellow", "merry", "misty", "noble", "odd", "pale",
    "plain", "proud", "quick", "quiet", "rapid", "rare", "red", "rough", "royal", "rusty", "shy",
    "silent", "silver", "sly", "smooth", "solid", "steady", "sunny", "swift", "tidy", "vivid",
    "warm", "wild",
];

const NOUNS: [&str; 64] = [
    "acorn", "anchor", "badger", "basin", "beacon", "birch", "bison", "brook", "canyon", "cedar",
    "comet", "coral", "crane", "creek", "delta", "dune", "eagle", "ember", "falcon", "fern",
    "fjord", "forest", "fox", "garnet", "glacier", "grove", "harbor", "hawk", "heron", "island",
    "lamp", "lantern", "lark", "ledge", "lynx", "maple", "meadow", "mesa", "moss", "moth", "oak",
    "orchid", "otter", "owl", "pebble", "pine", "planet", "pond", "prairie", "quartz", "raven",
    "reef", "ridge", "river", "robin", "sparrow", "spruce", "stone", "summit", "thistle", "tiger",
    "valley", "willow", "wren",
];

/// The readable id for `uuid`: the first of `adjective-noun`, `adjective-noun-2`, ... for which
/// `taken` is false. After 999 the last candidate is returned even if taken (hstry does the same:
/// readable ids are not unique-checked beyond that).
pub fn readable_id(uuid: &[u8; 16], mut taken: impl FnMut(&str) -> bool) -> String {
    // The random bits of a v4 or v7 UUID sit at the end; v7 starts with the time.
    let adjective = ADJECTIVES[usize::from(uuid[15]) % ADJECTIVES.len()];
    let noun = NOUNS[usize::from(uuid[14]) % NOUNS.len()];
    let base = format!("{adjective}-{noun}");
    if !taken(&base) {
        return base;
    }
    let mut candidate = base.clone();
    for n in 2..=999 {
        candidate = format!("{base}-{n}");
        if !taken(&candidate) {
            break;
        }
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_ids_are_word_pairs_and_avoid_collisions() {
        let uuid = [7u8; 16];
        let first = readable_id(&uuid, |_| false);
        let words: Vec<&str> = first.split('-').collect();
        assert_eq!(words.len(), 2, "{first}");
        assert!(
            words
                .iter()
                .all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        );
        let second = readable_id(&uuid, |id| id == first);
        assert_eq!(second, format!("{first}-2"));
        let third = readable_id(&uuid, |id| id == first || id == second);
        assert_eq!(third, format!("{first}-3"));
    }
}
