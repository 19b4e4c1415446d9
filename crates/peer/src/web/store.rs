//! What a page keeps in IndexedDB (database `switchboard`): identities
//! (object store `identities`, one base64url secret per name, the
//! browser's counterpart of [`Identity::load_or_create`](crate::Identity::load_or_create))
//! and trust books (object store `trust`, one per name, as a file holds it
//! natively).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use js_sys::Promise;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::{Closure, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

use crate::Identity;

const DATABASE: &str = "switchboard";
/// Version 2 added the trust store.
const VERSION: u32 = 2;
const STORE: &str = "identities";
const TRUST: &str = "trust";

/// The database, with its object stores made when missing.
async fn open() -> Result<IdbDatabase, JsValue> {
    let factory = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .indexed_db()?
        .ok_or_else(|| JsValue::from_str("IndexedDB is not available in this page"))?;
    let open = factory.open_with_u32(DATABASE, VERSION)?;
    let upgrade = Closure::once(move |e: web_sys::Event| {
        let db = e
            .target()
            .and_then(|t| t.dyn_into::<IdbOpenDbRequest>().ok())
            .and_then(|r| r.result().ok())
            .and_then(|d| d.dyn_into::<IdbDatabase>().ok());
        if let Some(db) = db {
            let names = db.object_store_names();
            for store in [STORE, TRUST] {
                if !names.contains(store) {
                    let _ = db.create_object_store(store);
                }
            }
        }
    });
    open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db = done(&open).await?.dyn_into();
    open.set_onupgradeneeded(None);
    db
}

/// The trust book stored under `name` (empty when none is).
pub(crate) async fn load_trust(
    name: &str,
) -> Result<std::collections::BTreeMap<switchboard_proto::PeerId, crate::Trust>, crate::TrustStoreError> {
    let io = |e: JsValue| crate::TrustStoreError::Io(super::js_error(&e));
    let db = open().await.map_err(io)?;
    let store = db.transaction_with_str(TRUST).map_err(io)?.object_store(TRUST).map_err(io)?;
    let found = done(&store.get(&JsValue::from_str(name)).map_err(io)?).await.map_err(io)?;
    db.close();
    match found.as_string() {
        Some(text) => crate::trust::decode(&text),
        None if found.is_undefined() || found.is_null() => Ok(Default::default()),
        None => Err(crate::TrustStoreError::Format("not text".into())),
    }
}

/// Stores `text` as the trust book under `name`.
pub(crate) async fn save_trust(name: &str, text: &str) -> Result<(), JsValue> {
    let db = open().await?;
    let store = db.transaction_with_str_and_mode(TRUST, IdbTransactionMode::Readwrite)?.object_store(TRUST)?;
    done(&store.put_with_key(&JsValue::from_str(text), &JsValue::from_str(name))?).await?;
    db.close();
    Ok(())
}

/// The identity stored under `name`, made and stored the first time.
pub(crate) async fn identity(name: &str) -> Result<Identity, JsValue> {
    let db = open().await?;
    let store = db.transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)?.object_store(STORE)?;
    let key = JsValue::from_str(name);
    let found = done(&store.get(&key)?).await?;
    if let Some(secret) = found.as_string() {
        let bytes =
            URL_SAFE_NO_PAD.decode(&secret).map_err(|_| JsValue::from_str("stored identity is not base64url"))?;
        let secret: [u8; 32] = bytes.try_into().map_err(|_| JsValue::from_str("stored identity is not 32 bytes"))?;
        return Ok(Identity::from_secret_bytes(secret));
    }
    let identity = Identity::generate();
    let secret = JsValue::from_str(&URL_SAFE_NO_PAD.encode(identity.to_secret_bytes()));
    done(&store.put_with_key(&secret, &key)?).await?;
    db.close();
    Ok(identity)
}

/// The result of an IndexedDB request, once it is done.
async fn done(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        let r = request.clone();
        let success = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = resolve.call1(&JsValue::NULL, &r.result().unwrap_or(JsValue::UNDEFINED));
        });
        let r = request.clone();
        let failure = Closure::once_into_js(move |_: web_sys::Event| {
            let why =
                r.error().ok().flatten().map_or_else(|| JsValue::from_str("IndexedDB request failed"), JsValue::from);
            let _ = reject.call1(&JsValue::NULL, &why);
        });
        request.set_onsuccess(Some(success.unchecked_ref()));
        request.set_onerror(Some(failure.unchecked_ref()));
    });
    JsFuture::from(promise).await
}
