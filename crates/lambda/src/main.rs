//! `flowhound-lambda`: the AWS Lambda function (provided.al2023 runtime,
//! binary named `bootstrap` in the package; see docs/lambda.md).

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().with_ansi(false).without_time().init();
    let settings = flowhound_lambda::Settings::from_env().map_err(Error::from)?;
    lambda_runtime::run(service_fn(move |e: LambdaEvent<S3Event>| {
        let settings = settings.clone();
        async move { flowhound_lambda::handle(e.payload, settings).await.map_err(Error::from) }
    }))
    .await
}
