//! `userauth mail-test ADDRESS`: one message through the configured mail server, and its answer.

use anyhow::Context;
use clap::Args;

use crate::config::Loaded;

#[derive(Debug, Args)]
pub struct MailTest {
    /// Where to send it
    address: String,
}

impl MailTest {
    pub async fn run(self, loaded: &Loaded) -> anyhow::Result<()> {
        let address = self.address;
        let mailer = super::mailer(loaded)?.context(super::MAIL_NOT_CONFIGURED)?;
        let server = mailer.settings().server();
        let message = mailer.test_message(&address)?;
        match mailer.send_now(message).await {
            Ok(reply) => {
                println!("sent a test message to {address} through {server}; the server answered: {reply}");
                Ok(())
            }
            Err(e) => anyhow::bail!("sending to {address} through {server} failed: {e}"),
        }
    }
}
