//! Rules both stores apply to an account's row inside the transaction that changes it, written
//! once so SQLite and PostgreSQL refuse the same things with the same words.
use super::{Account, StoreError};
use crate::domain::money::MicroUsd;

/// The balance after crediting `amount` (negative: taking it back), or why it cannot be: the
/// balance is a 64-bit count of micro-dollars, and credits held by unfinished jobs stay.
pub fn credited_balance(account: &Account, amount: MicroUsd) -> Result<MicroUsd, StoreError> {
    if amount.0 < 0 && (account.available().0 as i128) < -(amount.0 as i128) {
        return Err(StoreError::Refused(format!(
            "cannot remove {}: only {} is available",
            MicroUsd(amount.0.saturating_neg()),
            account.available()
        )));
    }
    account.balance.0.checked_add(amount.0).map(MicroUsd).ok_or_else(|| {
        StoreError::Refused(format!(
            "cannot add {amount}: the balance of {} would pass the maximum of {}",
            account.balance,
            MicroUsd(i64::MAX)
        ))
    })
}

/// Refuses a concurrency limit of 0: an account always has room for one job (suspending an
/// account is not done through its limits).
pub fn check_max_concurrent(max_concurrent: u32) -> Result<u32, StoreError> {
    if max_concurrent == 0 {
        return Err(StoreError::Refused("max_concurrent must be at least 1".into()));
    }
    Ok(max_concurrent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(balance: i64, held: i64) -> Account {
        Account {
            id: uuid::Uuid::nil(),
            name: "a".into(),
            balance: MicroUsd(balance),
            held: MicroUsd(held),
            max_concurrent: 1,
            max_backlog: 0,
            active_jobs: 0,
            backlogged_jobs: 0,
            webhook_secret: String::new(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            storage: Default::default(),
            storage_quota: Default::default(),
            suspended: false,
            rate_limit_per_minute: None,
        }
    }

    fn refusal(r: Result<MicroUsd, StoreError>) -> String {
        match r {
            Err(StoreError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_credit_keeps_the_balance_within_range_and_the_holds_covered() {
        assert_eq!(credited_balance(&account(5, 0), MicroUsd(i64::MAX - 5)).unwrap(), MicroUsd(i64::MAX));
        let past = refusal(credited_balance(&account(6, 0), MicroUsd(i64::MAX - 5)));
        assert!(past.contains("would pass the maximum of $9223372036854.775807"), "{past}");
        assert_eq!(credited_balance(&account(10, 4), MicroUsd(-6)).unwrap(), MicroUsd(4));
        assert!(refusal(credited_balance(&account(10, 4), MicroUsd(-7))).contains("only $0.000006 is available"));
        assert!(refusal(credited_balance(&account(10, 0), MicroUsd(i64::MIN))).contains("cannot remove"));
    }

    #[test]
    fn a_concurrency_limit_of_zero_is_refused() {
        assert_eq!(check_max_concurrent(1).unwrap(), 1);
        assert!(matches!(check_max_concurrent(0), Err(StoreError::Refused(why)) if why.contains("at least 1")));
    }
}
