//! The API catalogues: an open-banking API, a retail shop and a B2B SaaS API. Each endpoint
//! has its method, route template, success status and distributions of response size,
//! latency and request size; each API has the screens its apps show, as a Markov chain
//! over screens whose states call one to three endpoints.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The APIs the generator can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    /// Open banking: accounts, transactions, payments, cards (paths under `/accounts`,
    /// `/payments`, ...).
    Bank,
    /// A retail shop: products, cart, coupons, gift cards, checkout (under `/shop`).
    Retail,
    /// A B2B SaaS API: workspaces, projects, documents, exports (under `/api/v1`).
    Saas,
}

impl ApiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::Bank => "bank",
            ApiKind::Retail => "retail",
            ApiKind::Saas => "saas",
        }
    }

    /// The OAuth clients of the API's web and mobile apps.
    pub(crate) fn clients(self) -> (&'static str, &'static str) {
        match self {
            ApiKind::Bank => ("web-app", "mobile-app"),
            ApiKind::Retail => ("shop-web", "shop-app"),
            ApiKind::Saas => ("saas-web", "saas-desktop"),
        }
    }

    pub(crate) fn screens(self) -> &'static Screens {
        match self {
            ApiKind::Bank => &BANK_SCREENS,
            ApiKind::Retail => &RETAIL_SCREENS,
            ApiKind::Saas => &SAAS_SCREENS,
        }
    }
}

impl fmt::Display for ApiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ApiKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bank" => Ok(ApiKind::Bank),
            "retail" => Ok(ApiKind::Retail),
            "saas" => Ok(ApiKind::Saas),
            _ => Err(format!("unknown API {s:?}; one of bank, retail, saas")),
        }
    }
}

/// One endpoint: what a successful call returns and how long it takes.
#[derive(Debug, PartialEq)]
pub(crate) struct Endpoint {
    pub method: &'static str,
    pub route: &'static str,
    pub ok: u16,
    /// (median, sigma) of the successful response body in bytes (log-normal).
    pub body: (f64, f64),
    /// (median, sigma) of the latency in milliseconds.
    pub latency: (f64, f64),
    /// (median, sigma) of the request body in bytes.
    pub request: (f64, f64),
    /// Chance that an ordinary call fails validation (422): a mistyped coupon, a payment
    /// over the limit.
    pub invalid: f64,
}

const fn ep(
    method: &'static str,
    route: &'static str,
    ok: u16,
    body: (f64, f64),
    latency: (f64, f64),
) -> Endpoint {
    Endpoint {
        method,
        route,
        ok,
        body,
        latency,
        request: (0.0, 0.0),
        invalid: 0.0,
    }
}

const fn with_request(e: Endpoint, request: (f64, f64), invalid: f64) -> Endpoint {
    Endpoint {
        request,
        invalid,
        ..e
    }
}

// ---- shared ----
pub(crate) static TOKEN: Endpoint = with_request(
    ep("POST", "/oauth/token", 200, (1350.0, 0.08), (140.0, 0.3)),
    (190.0, 0.15),
    0.0,
);

// ---- open banking ----
pub(crate) static ACCOUNTS: Endpoint = ep("GET", "/accounts", 200, (1900.0, 0.35), (45.0, 0.35));
pub(crate) static ACCOUNT: Endpoint = ep("GET", "/accounts/{id}", 200, (950.0, 0.2), (35.0, 0.3));
pub(crate) static TRANSACTIONS: Endpoint = ep(
    "GET",
    "/accounts/{id}/transactions",
    200,
    (16_000.0, 0.45),
    (160.0, 0.4),
);
pub(crate) static TRANSACTION: Endpoint = ep(
    "GET",
    "/accounts/{id}/transactions/{id}",
    200,
    (1150.0, 0.25),
    (30.0, 0.3),
);
pub(crate) static STATEMENT: Endpoint = ep(
    "GET",
    "/accounts/{id}/statements/{id}",
    200,
    (180_000.0, 0.5),
    (900.0, 0.4),
);
pub(crate) static CREATE_PAYMENT: Endpoint = with_request(
    ep("POST", "/payments", 201, (720.0, 0.12), (380.0, 0.35)),
    (430.0, 0.2),
    0.03,
);
pub(crate) static PAYMENT: Endpoint = ep("GET", "/payments/{id}", 200, (830.0, 0.15), (40.0, 0.3));
pub(crate) static PROFILE: Endpoint = ep("GET", "/profile", 200, (1450.0, 0.1), (30.0, 0.25));
pub(crate) static CARDS: Endpoint = ep("GET", "/cards", 200, (2300.0, 0.35), (55.0, 0.3));
pub(crate) static LOGOUT: Endpoint = ep("POST", "/logout", 204, (0.0, 0.0), (25.0, 0.3));

// ---- retail ----
pub(crate) static PRODUCTS: Endpoint =
    ep("GET", "/shop/products", 200, (24_000.0, 0.4), (90.0, 0.4));
pub(crate) static PRODUCT: Endpoint = ep(
    "GET",
    "/shop/products/{id}",
    200,
    (3800.0, 0.3),
    (35.0, 0.3),
);
pub(crate) static REVIEWS: Endpoint = ep(
    "GET",
    "/shop/products/{id}/reviews",
    200,
    (9000.0, 0.5),
    (60.0, 0.35),
);
pub(crate) static CART: Endpoint = ep("GET", "/shop/cart", 200, (1600.0, 0.4), (30.0, 0.3));
pub(crate) static CART_ADD: Endpoint = with_request(
    ep("POST", "/shop/cart/items", 201, (900.0, 0.2), (60.0, 0.3)),
    (120.0, 0.2),
    0.0,
);
pub(crate) static CART_REMOVE: Endpoint = ep(
    "DELETE",
    "/shop/cart/items/{id}",
    204,
    (0.0, 0.0),
    (40.0, 0.3),
);
pub(crate) static COUPON: Endpoint = with_request(
    ep(
        "POST",
        "/shop/cart/coupons",
        200,
        (700.0, 0.15),
        (50.0, 0.3),
    ),
    (60.0, 0.1),
    0.15,
);
pub(crate) static CHECKOUT: Endpoint = with_request(
    ep("POST", "/shop/checkout", 201, (1400.0, 0.2), (650.0, 0.35)),
    (900.0, 0.3),
    0.02,
);
pub(crate) static ORDERS: Endpoint = ep("GET", "/shop/orders", 200, (2600.0, 0.4), (50.0, 0.3));
pub(crate) static ORDER: Endpoint =
    ep("GET", "/shop/orders/{id}", 200, (1300.0, 0.25), (35.0, 0.3));
pub(crate) static GIFT_CARD: Endpoint = ep(
    "GET",
    "/shop/giftcards/{id}/balance",
    200,
    (180.0, 0.05),
    (40.0, 0.3),
);
pub(crate) static SHOP_ACCOUNT: Endpoint =
    ep("GET", "/shop/account", 200, (1100.0, 0.15), (30.0, 0.25));

// ---- B2B SaaS ----
pub(crate) static ME: Endpoint = ep("GET", "/api/v1/users/me", 200, (900.0, 0.1), (25.0, 0.25));
pub(crate) static WORKSPACE: Endpoint = ep(
    "GET",
    "/api/v1/workspaces/{id}",
    200,
    (1500.0, 0.2),
    (35.0, 0.3),
);
pub(crate) static PROJECTS: Endpoint = ep(
    "GET",
    "/api/v1/workspaces/{id}/projects",
    200,
    (5200.0, 0.45),
    (70.0, 0.35),
);
pub(crate) static MEMBERS: Endpoint = ep(
    "GET",
    "/api/v1/workspaces/{id}/members",
    200,
    (3300.0, 0.4),
    (55.0, 0.3),
);
pub(crate) static PROJECT: Endpoint = ep(
    "GET",
    "/api/v1/projects/{id}",
    200,
    (2100.0, 0.3),
    (40.0, 0.3),
);
pub(crate) static DOCUMENTS: Endpoint = ep(
    "GET",
    "/api/v1/projects/{id}/documents",
    200,
    (14_000.0, 0.5),
    (120.0, 0.4),
);
pub(crate) static DOCUMENT: Endpoint = ep(
    "GET",
    "/api/v1/documents/{id}",
    200,
    (6500.0, 0.6),
    (45.0, 0.35),
);
pub(crate) static DOCUMENT_SAVE: Endpoint = with_request(
    ep(
        "PUT",
        "/api/v1/documents/{id}",
        200,
        (400.0, 0.2),
        (90.0, 0.35),
    ),
    (5000.0, 0.8),
    0.01,
);
pub(crate) static DOCUMENT_CREATE: Endpoint = with_request(
    ep(
        "POST",
        "/api/v1/documents",
        201,
        (600.0, 0.2),
        (120.0, 0.35),
    ),
    (3000.0, 0.8),
    0.01,
);
pub(crate) static SEARCH: Endpoint = ep("GET", "/api/v1/search", 200, (7000.0, 0.5), (150.0, 0.4));
pub(crate) static EXPORT: Endpoint = ep(
    "GET",
    "/api/v1/projects/{id}/export",
    200,
    (2_500_000.0, 0.7),
    (4000.0, 0.5),
);
pub(crate) static INVITE: Endpoint = with_request(
    ep(
        "POST",
        "/api/v1/workspaces/{id}/members",
        201,
        (500.0, 0.1),
        (200.0, 0.3),
    ),
    (150.0, 0.1),
    0.02,
);

/// Every endpoint, for the catalogue tests.
#[cfg(test)]
pub(crate) static ALL: [&Endpoint; 34] = [
    &TOKEN,
    &ACCOUNTS,
    &ACCOUNT,
    &TRANSACTIONS,
    &TRANSACTION,
    &STATEMENT,
    &CREATE_PAYMENT,
    &PAYMENT,
    &PROFILE,
    &CARDS,
    &LOGOUT,
    &PRODUCTS,
    &PRODUCT,
    &REVIEWS,
    &CART,
    &CART_ADD,
    &CART_REMOVE,
    &COUPON,
    &CHECKOUT,
    &ORDERS,
    &ORDER,
    &GIFT_CARD,
    &SHOP_ACCOUNT,
    &ME,
    &WORKSPACE,
    &PROJECTS,
    &MEMBERS,
    &PROJECT,
    &DOCUMENTS,
    &DOCUMENT,
    &DOCUMENT_SAVE,
    &DOCUMENT_CREATE,
    &SEARCH,
    &EXPORT,
];

/// The size of an error response body.
pub(crate) fn error_body(status: u16) -> (f64, f64) {
    match status {
        400 => (180.0, 0.1),
        401 => (160.0, 0.05),
        403 => (140.0, 0.05),
        404 => (120.0, 0.05),
        422 => (260.0, 0.15),
        429 => (90.0, 0.05),
        _ => (90.0, 0.1),
    }
}

/// The status of an ordinary call: mostly success, ~1% 404, rare 403 and 5xx, and the
/// endpoint's own share of validation errors.
pub(crate) fn benign_status(rng: &mut impl rand::Rng, e: &Endpoint) -> u16 {
    let r: f64 = rng.random();
    if e.invalid > 0.0 {
        return if r < e.invalid { 422 } else { e.ok };
    }
    if e.method != "GET" {
        return e.ok;
    }
    if r < 0.01 {
        404
    } else if r < 0.0125 {
        403
    } else if r < 0.0135 {
        503
    } else {
        e.ok
    }
}

/// One gateway call to emit.
#[derive(Debug)]
pub(crate) struct Call {
    pub endpoint: &'static Endpoint,
    pub path: String,
    pub status: u16,
    /// Multiplies the successful response size (bigger pages, exports).
    pub size_factor: f64,
    /// The path does not fit the endpoint's template (tampered ids, probes): the route is
    /// derived from the path, as a gateway without a matching route would log it.
    pub raw_route: bool,
}

impl Call {
    pub fn new(endpoint: &'static Endpoint, path: String, status: u16) -> Self {
        Self {
            endpoint,
            path,
            status,
            size_factor: 1.0,
            raw_route: false,
        }
    }

    /// A call to an arbitrary path (scanner probes, tampered ids).
    pub fn raw(endpoint: &'static Endpoint, path: String, status: u16) -> Self {
        Self {
            raw_route: true,
            ..Self::new(endpoint, path, status)
        }
    }

    /// A call to a route without ids.
    pub fn fixed(endpoint: &'static Endpoint, status: u16) -> Self {
        Self::new(endpoint, endpoint.route.to_owned(), status)
    }

    /// A call whose path is the route with its `{id}`s replaced by `ids`, in order.
    pub fn with_ids(endpoint: &'static Endpoint, ids: &[&dyn IdPart], status: u16) -> Self {
        Self::new(endpoint, fill(endpoint.route, ids), status)
    }
}

/// What can stand where a route has `{id}`: numbers (written without the formatting
/// machinery, as paths are made for every request) and text.
pub(crate) trait IdPart {
    fn push_to(&self, out: &mut String);
}

impl IdPart for u64 {
    fn push_to(&self, out: &mut String) {
        crate::generate::push_decimal(out, *self);
    }
}

impl IdPart for str {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl IdPart for String {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl<T: IdPart + ?Sized> IdPart for &T {
    fn push_to(&self, out: &mut String) {
        (**self).push_to(out);
    }
}

/// The route template with its `{id}` placeholders replaced, in order.
pub(crate) fn fill(route: &str, ids: &[&dyn IdPart]) -> String {
    let mut out = String::with_capacity(route.len() + 16 * ids.len());
    let mut rest = route;
    let mut ids = ids.iter();
    while let Some(i) = rest.find("{id}") {
        out.push_str(&rest[..i]);
        if let Some(id) = ids.next() {
            id.push_to(&mut out);
        }
        rest = &rest[i + 4..];
    }
    out.push_str(rest);
    out
}

/// The screens of an API's apps and the chance of going from one to the next. The last
/// screen is the end of the session.
#[derive(Debug)]
pub(crate) struct Screens {
    pub names: &'static [&'static str],
    pub transitions: &'static [&'static [(u8, f64)]],
}

impl Screens {
    pub fn end(&self) -> u8 {
        (self.names.len() - 1) as u8
    }

    /// The next screen; the end is weighted by `end_scale`, and impossible while
    /// `keep_going`.
    pub fn next(
        &self,
        current: u8,
        rng: &mut impl rand::Rng,
        end_scale: f64,
        keep_going: bool,
    ) -> u8 {
        let end = self.end();
        let Some(table) = self.transitions.get(usize::from(current)) else {
            return 0;
        };
        let weight = |s: u8, w: f64| {
            if s != end {
                w
            } else if keep_going {
                0.0
            } else {
                w * end_scale
            }
        };
        let total: f64 = table.iter().map(|&(s, w)| weight(s, w)).sum();
        if total <= 0.0 {
            return 0;
        }
        let mut x = rng.random::<f64>() * total;
        for &(s, w) in table.iter() {
            let w = weight(s, w);
            if x < w {
                return s;
            }
            x -= w;
        }
        0
    }
}

/// Bank screens (indices into [`BANK_SCREENS`]).
pub(crate) mod bank {
    pub const HOME: u8 = 0;
    pub const ACCOUNT: u8 = 1;
    pub const TRANSACTIONS: u8 = 2;
    pub const TRANSACTION: u8 = 3;
    pub const NEW_PAYMENT: u8 = 4;
    pub const PAYMENT_STATUS: u8 = 5;
    pub const PROFILE: u8 = 6;
    pub const CARDS: u8 = 7;
    pub const END: u8 = 8;
}

pub(crate) static BANK_SCREENS: Screens = {
    use bank::*;
    Screens {
        names: &[
            "home",
            "account",
            "transactions",
            "transaction",
            "new_payment",
            "payment_status",
            "profile",
            "cards",
            "end",
        ],
        transitions: &[
            &[
                (ACCOUNT, 0.45),
                (TRANSACTIONS, 0.15),
                (CARDS, 0.08),
                (PROFILE, 0.05),
                (NEW_PAYMENT, 0.07),
                (PAYMENT_STATUS, 0.04),
                (END, 0.16),
            ],
            &[
                (TRANSACTIONS, 0.25),
                (TRANSACTION, 0.3),
                (HOME, 0.12),
                (NEW_PAYMENT, 0.06),
                (ACCOUNT, 0.07),
                (END, 0.2),
            ],
            &[
                (TRANSACTION, 0.4),
                (TRANSACTIONS, 0.15),
                (ACCOUNT, 0.08),
                (HOME, 0.1),
                (END, 0.27),
            ],
            &[
                (TRANSACTION, 0.3),
                (TRANSACTIONS, 0.25),
                (HOME, 0.1),
                (ACCOUNT, 0.05),
                (END, 0.3),
            ],
            &[
                (HOME, 0.35),
                (PAYMENT_STATUS, 0.15),
                (ACCOUNT, 0.2),
                (END, 0.3),
            ],
            &[(HOME, 0.35), (ACCOUNT, 0.2), (END, 0.45)],
            &[(HOME, 0.4), (CARDS, 0.2), (END, 0.4)],
            &[(HOME, 0.4), (ACCOUNT, 0.2), (END, 0.4)],
            &[(END, 1.0)],
        ],
    }
};

/// Retail screens (indices into [`RETAIL_SCREENS`]).
pub(crate) mod retail {
    pub const HOME: u8 = 0;
    pub const SEARCH: u8 = 1;
    pub const PRODUCT: u8 = 2;
    pub const ADD_TO_CART: u8 = 3;
    pub const CART: u8 = 4;
    pub const CHECKOUT: u8 = 5;
    pub const ORDERS: u8 = 6;
    pub const ORDER: u8 = 7;
    pub const ACCOUNT: u8 = 8;
    pub const GIFT_CARD: u8 = 9;
    pub const END: u8 = 10;

    /// Screens a guest may see before logging in.
    pub fn anonymous(screen: u8) -> bool {
        matches!(screen, HOME | SEARCH | PRODUCT)
    }
}

pub(crate) static RETAIL_SCREENS: Screens = {
    use retail::*;
    Screens {
        names: &[
            "home",
            "search",
            "product",
            "add_to_cart",
            "cart",
            "checkout",
            "orders",
            "order",
            "account",
            "gift_card",
            "end",
        ],
        transitions: &[
            &[
                (SEARCH, 0.35),
                (PRODUCT, 0.3),
                (CART, 0.05),
                (ORDERS, 0.06),
                (ACCOUNT, 0.02),
                (GIFT_CARD, 0.01),
                (END, 0.21),
            ],
            &[(PRODUCT, 0.55), (SEARCH, 0.2), (HOME, 0.05), (END, 0.2)],
            &[
                (PRODUCT, 0.3),
                (SEARCH, 0.2),
                (ADD_TO_CART, 0.15),
                (HOME, 0.05),
                (END, 0.3),
            ],
            &[
                (CART, 0.35),
                (SEARCH, 0.2),
                (PRODUCT, 0.2),
                (CHECKOUT, 0.1),
                (END, 0.15),
            ],
            &[
                (CHECKOUT, 0.45),
                (PRODUCT, 0.15),
                (SEARCH, 0.15),
                (END, 0.25),
            ],
            &[(ORDER, 0.3), (HOME, 0.2), (END, 0.5)],
            &[(ORDER, 0.5), (HOME, 0.2), (END, 0.3)],
            &[(ORDER, 0.2), (ORDERS, 0.2), (HOME, 0.2), (END, 0.4)],
            &[(HOME, 0.3), (GIFT_CARD, 0.1), (ORDERS, 0.2), (END, 0.4)],
            &[(HOME, 0.3), (CART, 0.2), (END, 0.5)],
            &[(END, 1.0)],
        ],
    }
};

/// SaaS screens (indices into [`SAAS_SCREENS`]).
pub(crate) mod saas {
    pub const HOME: u8 = 0;
    pub const PROJECT: u8 = 1;
    pub const DOCUMENT: u8 = 2;
    pub const EDIT: u8 = 3;
    pub const CREATE: u8 = 4;
    pub const SEARCH: u8 = 5;
    pub const MEMBERS: u8 = 6;
    pub const EXPORT: u8 = 7;
    pub const END: u8 = 8;
}

pub(crate) static SAAS_SCREENS: Screens = {
    use saas::*;
    Screens {
        names: &[
            "home", "project", "document", "edit", "create", "search", "members", "export", "end",
        ],
        transitions: &[
            &[
                (PROJECT, 0.55),
                (SEARCH, 0.15),
                (MEMBERS, 0.04),
                (DOCUMENT, 0.1),
                (END, 0.16),
            ],
            &[
                (DOCUMENT, 0.55),
                (CREATE, 0.06),
                (PROJECT, 0.1),
                (HOME, 0.08),
                (EXPORT, 0.01),
                (END, 0.2),
            ],
            &[
                (EDIT, 0.3),
                (DOCUMENT, 0.25),
                (PROJECT, 0.15),
                (SEARCH, 0.05),
                (END, 0.25),
            ],
            &[(EDIT, 0.35), (DOCUMENT, 0.3), (PROJECT, 0.1), (END, 0.25)],
            &[(EDIT, 0.6), (PROJECT, 0.2), (END, 0.2)],
            &[(DOCUMENT, 0.6), (SEARCH, 0.15), (END, 0.25)],
            &[(HOME, 0.5), (END, 0.5)],
            &[(PROJECT, 0.4), (END, 0.6)],
            &[(END, 1.0)],
        ],
    }
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::rng::stream;

    #[test]
    fn routes_are_their_own_templates_and_filled_paths_template_back() {
        for e in ALL {
            assert_eq!(outrider_ingest::route::template(e.route), e.route);
            let path = fill(e.route, &[&12345u64, &678u64]);
            assert!(!path.contains('{'), "{path}");
            assert_eq!(outrider_ingest::route::template(&path), e.route, "{path}");
            assert!(e.body.0 >= 0.0 && e.latency.0 > 0.0);
        }
        assert_eq!(fill("/a/{id}/b/{id}", &[&1u64, &"x"]), "/a/1/b/x");
    }

    #[test]
    fn screen_tables_are_well_formed() {
        for screens in [&BANK_SCREENS, &RETAIL_SCREENS, &SAAS_SCREENS] {
            assert_eq!(screens.names.len(), screens.transitions.len());
            let end = screens.end();
            for table in screens.transitions {
                let total: f64 = table.iter().map(|t| t.1).sum();
                assert!((total - 1.0).abs() < 1e-9, "{total}");
                assert!(table.iter().all(|t| t.0 <= end));
            }
            let mut rng = stream(1, 99, 1);
            // Sessions end, and never while told to keep going.
            for start in 0..end {
                assert_ne!(screens.next(start, &mut rng, 1.0, true), end);
            }
            let mut s = 0;
            let mut steps = 0;
            while s != end && steps < 1000 {
                s = screens.next(s, &mut rng, 1.0, false);
                steps += 1;
            }
            assert_eq!(s, end);
        }
    }

    #[test]
    fn benign_statuses_are_mostly_success() {
        let mut rng = stream(2, 99, 1);
        let n = 100_000;
        let errors = (0..n)
            .filter(|_| benign_status(&mut rng, &ACCOUNT) >= 400)
            .count();
        assert!((1_000..1_800).contains(&errors), "{errors}");
        let invalid = (0..n)
            .filter(|_| benign_status(&mut rng, &COUPON) == 422)
            .count();
        assert!((13_000..17_000).contains(&invalid), "{invalid}");
        assert!((0..1000).all(|_| benign_status(&mut rng, &LOGOUT) == 204));
        assert_eq!("saas".parse::<ApiKind>(), Ok(ApiKind::Saas));
        assert!("soap".parse::<ApiKind>().is_err());
    }
}
