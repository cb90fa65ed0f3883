//! A tiny API protected by IdentSphere access tokens, validated offline.
//!
//! Run an IdentSphere server with an asymmetric algorithm, then this:
//!
//! ```sh
//! IDENTSPHERE_JWT_ALG=EdDSA cargo run -p identsphere-server -- serve
//! IDENTSPHERE_ISSUER=http://localhost:8080 cargo run -p identsphere-jwt --example protected_api
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" localhost:3000/whoami
//! ```
//!
//! Environment: `IDENTSPHERE_ISSUER` (required: the server's public URL),
//! `IDENTSPHERE_AUDIENCE` (default `identsphere`), `LISTEN` (default
//! `127.0.0.1:3000`; port 0 picks a free one). Prints `listening on
//! http://ADDR` once it accepts connections.
use axum::{routing::get, Extension, Json, Router};
use identsphere_jwt::{Claims, RequireAuthLayer, Validator};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("IDENTSPHERE_ISSUER")
        .map_err(|_| "set IDENTSPHERE_ISSUER to the IdentSphere server's public URL")?;
    let audience =
        std::env::var("IDENTSPHERE_AUDIENCE").unwrap_or_else(|_| "identsphere".to_owned());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let validator = Validator::builder(issuer, audience).build()?;
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(RequireAuthLayer::new(validator));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The caller, as the layer validated them.
async fn whoami(Extension(claims): Extension<Claims>) -> Json<Value> {
    Json(json!({
        "sub": claims.sub,
        "sid": claims.sid,
        "org_id": claims.org_id,
        "org_role": claims.org_role,
    }))
}
