//! `infra/main.bicep` parses with the published Bicep grammar (tree-sitter-bicep). The Bicep
//! compiler cannot be installed on CI machines, so this is what catches a template that
//! `az deployment group create` would refuse to read.

use std::path::Path;

use tree_sitter::{Node, Parser};

/// Every ERROR or MISSING node of `source` parsed as Bicep, with its line and the text there.
fn syntax_errors(source: &str) -> Vec<String> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_bicep::LANGUAGE.into())
        .expect("the Bicep grammar loads");
    let tree = parser
        .parse(source, None)
        .expect("the parser returns a tree");
    let mut errors = Vec::new();
    collect(tree.root_node(), source, &mut errors);
    errors
}

fn collect(node: Node<'_>, source: &str, errors: &mut Vec<String>) {
    if node.is_error() || node.is_missing() {
        let at = node.start_position();
        let text: String = source[node.byte_range()].chars().take(60).collect();
        errors.push(format!(
            "line {}, column {}: {} {:?}",
            at.row + 1,
            at.column + 1,
            if node.is_missing() {
                format!("missing {}", node.kind())
            } else {
                "cannot parse".to_owned()
            },
            text
        ));
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect(child, source, errors);
    }
}

fn main_bicep() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/main.bicep")).unwrap()
}

#[test]
fn main_bicep_parses_without_error_or_missing_nodes() {
    let source = main_bicep();
    let errors = syntax_errors(&source);
    assert!(
        errors.is_empty(),
        "infra/main.bicep:\n{}",
        errors.join("\n")
    );
}

/// The check itself: broken copies of the template must fail it.
#[test]
fn the_check_catches_a_broken_template() {
    let source = main_bicep();
    // Cut in the middle of the Function App resource: its braces never close.
    let cut = source.find("resource functionApp").unwrap() + 200;
    let truncated = &source[..cut];
    assert!(
        !syntax_errors(truncated).is_empty(),
        "a truncated file parsed cleanly"
    );
    // An unclosed string, and a stray token in an object.
    let unclosed = source.replace(
        "param graphCloud string = 'global'",
        "param graphCloud string = 'global",
    );
    assert!(
        !syntax_errors(&unclosed).is_empty(),
        "an unclosed string parsed cleanly"
    );
    let stray = source.replace("httpsOnly: true", "httpsOnly: true true");
    assert!(
        !syntax_errors(&stray).is_empty(),
        "a stray token parsed cleanly"
    );
}
