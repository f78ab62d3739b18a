//! Listings on stdout: streamed line by line, quiet when the reader goes away (`| head`).

/// Writes one line per item of `items` to stdout, buffered, after an optional header; a closed pipe
/// (`| head`) ends the listing quietly. Constant memory however long the stream.
pub(crate) async fn print_lines<T, E>(
    items: impl futures_util::Stream<Item = Result<T, E>>,
    header: Option<&str>,
    mut line: impl FnMut(&mut dyn std::io::Write, T) -> std::io::Result<()>,
) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    use std::io::Write;
    let quiet_on_closed_pipe = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
        Ok(()) => Ok(true),
    };
    let mut items = std::pin::pin!(items);
    // Not `stdout().lock()`: the guard cannot be held across awaits on a multi-threaded runtime.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    if let Some(h) = header
        && !quiet_on_closed_pipe(writeln!(out, "{h}"))?
    {
        return Ok(());
    }
    while let Some(item) = items.next().await {
        if !quiet_on_closed_pipe(line(&mut out, item?))? {
            return Ok(());
        }
    }
    quiet_on_closed_pipe(out.flush())?;
    Ok(())
}
