//! How a failed exchange with a server is told in errors and logs: the error with its
//! causes, which reqwest and hyper keep in a chain ("error sending request: connection
//! refused").

/// An error with its causes ("error sending request: connection refused").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
