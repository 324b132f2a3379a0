//! Splitting `--spawn` into words the way a POSIX shell would, without running one: single
//! quotes keep everything literally, double quotes keep spaces and let a backslash escape
//! `"`, `\`, `$` and `` ` ``, and outside quotes a backslash keeps the next character. There
//! is no expansion of any kind (`$VAR`, `~`, globs) and no operators (`|`, `;`).

/// The words of `line`; an error for an unterminated quote or a trailing backslash.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    // The word being built; `None` between words (so that `''` still makes an empty word).
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {line:?}")),
                    }
                }
            }
            '"' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {line:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {line:?}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("trailing backslash in {line:?}")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    fn words(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            words("python3  worker.py\tx"),
            ["python3", "worker.py", "x"]
        );
        assert_eq!(
            words("'/my dir/python' \"a b\" c\\ d"),
            ["/my dir/python", "a b", "c d"]
        );
        assert_eq!(words(r#"a"b"'c' '' """#), ["abc", "", ""]);
        assert_eq!(words(r#""say \"hi\" \$HOME \n""#), [r#"say "hi" $HOME \n"#]);
        assert_eq!(words(r"'it''s' \'"), ["its", "'"]);
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        for bad in ["'a", "\"a", "a\\", "\"a\\"] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }
}
