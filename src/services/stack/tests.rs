use super::*;

#[test]
fn default_service_address_is_the_last_host() {
    assert_eq!(
        default_address(Ipv4Addr::new(10, 66, 0, 1), 16),
        Ipv4Addr::new(10, 66, 255, 254)
    );
    assert_eq!(
        default_address(Ipv4Addr::new(10, 70, 0, 1), 24),
        Ipv4Addr::new(10, 70, 0, 254)
    );
}
