// Input:
// #[wsk_endpoint(kind = "connection", remote = "10.0.0.1:80", exclusive)]
// pub struct Client;
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

pub struct Client;
const _: () = {
    static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
        name: "Client",
        addr: ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([
            2u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
            0u8,
        ]),
        remote: ::core::option::Option::Some(
            ::wsk::__private::Remote::Addr(
                ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([
                    2u8, 0u8, 0u8, 80u8, 10u8, 0u8, 0u8, 1u8, 0u8, 0u8, 0u8, 0u8, 0u8,
                    0u8, 0u8, 0u8,
                ]),
            ),
        ),
        max_connections: 0u32,
        exclusive: true,
        v6only: ::core::option::Option::None,
        events: ::wsk::__private::Events::NONE,
    };
    #[automatically_derived]
    impl ::wsk::Endpoint for Client {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &__WSK_CONFIG
        }
        fn start_with(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start::<
                ::wsk::__private::kind::Connection,
                Self,
            >(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
        }
    }
};
